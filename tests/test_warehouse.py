import duckdb
import pytest

from warehouse.db import migrate, migrations, open_warehouse

DESIGN_TABLES = {
    "schema_migrations",
    "runs",
    "questions",
    "question_sources",
    "quarantine",
    "question_labels",
    "predictors",
    "traces",
    "spans",
    "qa_metrics",
    "releases",
    "release_items",
}


def _tables(con) -> set[str]:
    return {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def test_open_creates_every_table(db_path):
    with open_warehouse(db_path) as wh:
        assert DESIGN_TABLES <= _tables(wh.con)
        versions = [
            row[0] for row in wh.con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
        ]
    assert versions == [v for v, _, _ in migrations()]


def test_older_database_is_migrated_in_place(db_path):
    con = duckdb.connect(str(db_path))
    assert migrate(con, target=1) == [1]
    con.execute(
        "INSERT INTO runs (run_id, kind, started_at, status) VALUES ('r0', 'ingest', now(), 'completed')"
    )
    assert "traces" not in _tables(con)
    con.close()
    with open_warehouse(db_path) as wh:
        assert DESIGN_TABLES <= _tables(wh.con)
        assert wh.scalar("SELECT count(*) FROM runs WHERE run_id = 'r0'") == 1
    with open_warehouse(db_path) as wh:  # a second open applies nothing
        assert migrate(wh.con) == []


def test_runs_record_config_and_outcome(db_path):
    with open_warehouse(db_path) as wh:
        run_id = wh.start_run("ingest", {"b": 1, "a": [1, 2]})
        wh.finish_run(run_id, "completed", {"read": 3})
        row = wh.frame("SELECT * FROM runs WHERE run_id = ?", [run_id]).to_dicts()[0]
    assert row["status"] == "completed" and row["finished_at"] is not None
    assert row["config_hash"] and row["code_version"]
    assert '"read": 3' in row["stats_json"]


def test_read_only_needs_an_existing_database(tmp_path):
    with pytest.raises(FileNotFoundError, match="no warehouse"):
        with open_warehouse(tmp_path / "missing.duckdb", read_only=True):
            pass


def test_read_only_connection_rejects_writes(db_path):
    with open_warehouse(db_path):
        pass
    with open_warehouse(db_path, read_only=True) as wh:
        with pytest.raises(duckdb.Error):
            wh.con.execute("DELETE FROM runs")
