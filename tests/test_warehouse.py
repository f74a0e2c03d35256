import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from tessy.config import IngestConfig, SourceConfig
from tessy.stages.ingest import ingest_source
from tests.conftest import REPO
from warehouse.db import WarehouseBusy, migrate, migrations, open_warehouse, read_query

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
    "evaluations",
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


def _holder(db, seconds: float) -> subprocess.Popen:
    """Another process holding the warehouse writable for `seconds` (a stage's load, say)."""
    code = (
        f"import duckdb, time\ncon = duckdb.connect({str(db)!r})\n"
        f"print('held', flush=True)\ntime.sleep({seconds})\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_readers_and_writers_wait_their_turn(db_path):
    with open_warehouse(db_path) as wh:
        wh.con.execute("CREATE TABLE probe AS SELECT 999 AS version")
    holder = _holder(db_path, 1.5)
    start = time.monotonic()
    assert read_query(db_path, "SELECT count(*) AS n FROM probe WHERE version = 999")["n"][0] == 1
    with open_warehouse(db_path) as wh:  # and a writer after it
        wh.con.execute("DROP TABLE probe")
    assert time.monotonic() - start > 0.5  # it did wait
    holder.wait()


def test_a_holder_that_stays_is_named_after_the_wait(db_path):
    open_warehouse(db_path).__enter__().con.close()
    holder = _holder(db_path, 10)
    try:
        with pytest.raises(WarehouseBusy, match=rf"still held by .*\(PID {holder.pid}\) after 1 s"):
            with open_warehouse(db_path, wait_s=1):
                pass
    finally:
        holder.kill()
        holder.wait()


def test_a_file_another_process_is_creating_is_waited_for_and_a_corrupt_one_refused(tmp_path):
    creating = tmp_path / "new.duckdb"
    creating.write_bytes(b"\0" * 100)  # created, headers not written yet
    threading.Timer(0.5, creating.unlink).start()  # here: that process gave up; we create it ourselves
    with open_warehouse(creating, wait_s=10) as wh:
        assert wh.scalar("SELECT count(*) FROM questions") == 0
    corrupt = tmp_path / "corrupt.duckdb"
    corrupt.write_bytes(b"x" * 20_000)
    start = time.monotonic()
    with pytest.raises(duckdb.IOException, match="not a valid DuckDB database file"):
        with open_warehouse(corrupt, wait_s=10):
            pass
    assert time.monotonic() - start < 5


def test_two_ingests_at_once_both_complete(tmp_path):
    db = tmp_path / "wh.duckdb"
    sources = [
        REPO / "tessy/data/sample_openthoughts_metadata.jsonl",
        REPO / "tessy/data/sample_nemotron.jsonl",
    ]
    tessy = Path(sys.executable).parent / "tessy"
    runs = [
        subprocess.Popen(
            [str(tessy), "ingest", str(src), "--db", str(db), "--json"], stdout=subprocess.PIPE, text=True
        )
        for src in sources
    ]
    outputs = [json.loads(run.communicate(timeout=300)[0].strip().splitlines()[-1])[0] for run in runs]
    assert all(run.returncode == 0 for run in runs)
    with open_warehouse(db, read_only=True) as wh:
        assert wh.scalar("SELECT count(*) FROM questions") == sum(o["ingested"] for o in outputs) == 12
        assert wh.scalar("SELECT count(*) FROM runs WHERE status = 'completed'") == 2


def test_a_reader_gets_in_between_the_batches_of_an_ingest(tmp_path):
    db = tmp_path / "wh.duckdb"
    query = (
        "from warehouse.db import open_warehouse\n"
        f"with open_warehouse({str(db)!r}, read_only=True, wait_s=1) as wh:\n"
        "    print(wh.scalar('SELECT count(*) FROM questions'))"
    )
    seen = []

    def read_now(_stats) -> None:  # another process queries while the ingest is still going on
        done = subprocess.run(
            [sys.executable, "-c", query], capture_output=True, text=True, timeout=60, cwd=REPO
        )
        seen.append(done.stdout.strip() or done.stderr.strip().splitlines()[-1])

    source = SourceConfig(path=str(REPO / "tessy/data/sample_openthoughts_metadata.jsonl"))
    stats = ingest_source(db, source, IngestConfig(batch_rows=2), "run-1", on_batch=read_now)
    assert len(seen) >= 3 and seen == sorted(seen, key=int) and int(seen[-1]) == stats.ingested, seen


def test_runs_of_a_dead_process_are_marked_failed_at_the_next_start(db_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with open_warehouse(db_path) as wh:
        wh.con.execute(
            "INSERT INTO runs (run_id, kind, started_at, status, host, pid) VALUES ('killed', 'synthesize',"
            " now(), 'running', ?, ?), ('elsewhere', 'qa', now(), 'running', 'other', 1)",
            [socket.gethostname(), gone.pid],
        )
        mine = wh.start_run("ingest")
        status = dict(wh.con.execute("SELECT run_id, status FROM runs").fetchall())
        error = wh.scalar("SELECT stats_json FROM runs WHERE run_id = 'killed'")
    assert status == {"killed": "failed", "elsewhere": "running", mine: "running"}
    assert "process died" in error


def test_a_trace_metric_is_stored_once_per_qa_settings(tmp_path):
    import polars as pl

    from warehouse.metrics import record_qa_run, save_trace_metrics

    metrics = pl.DataFrame(
        {"subject_id": ["t1", "t1"], "metric": ["n_tokens", "solved"], "value": [5.0, 1.0]}
    )
    with open_warehouse(tmp_path / "wh.duckdb") as wh:
        assert save_trace_metrics(wh, metrics, ["t1"], "qa-1", "a" * 64) == 2
        record_qa_run(wh, "qa-1", "a" * 64)
        # A second run with the same settings (one that ran at the same time) adds nothing.
        assert save_trace_metrics(wh, metrics, ["t1"], "qa-2", "a" * 64) == 0
        record_qa_run(wh, "qa-2", "a" * 64)
        assert save_trace_metrics(wh, metrics, ["t1"], "qa-3", "b" * 64) == 2  # other settings: measured anew
        assert wh.scalar("SELECT count(*) FROM qa_metrics") == 4
