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
    a, b = "a" * 64, "b" * 64
    with open_warehouse(tmp_path / "wh.duckdb") as wh:
        wh.con.execute(
            "INSERT INTO traces (trace_id, question_id, run_id, method, student_model, teacher_model, status)"
            " VALUES ('t1', 'q1', 'run', 'tessy', 's', 't', 'ok')"
        )

        def sums(key):
            return wh.frame("SELECT metric, n, total FROM qa_sums WHERE qa_key = ? ORDER BY 1", [key]).rows()

        assert save_trace_metrics(wh, metrics, ["t1"], "qa-1", a) == 2
        record_qa_run(wh, "qa-1", a)
        # A second run with the same settings (one that ran at the same time) adds nothing.
        assert save_trace_metrics(wh, metrics, ["t1"], "qa-2", a) == 0
        record_qa_run(wh, "qa-2", a)
        assert save_trace_metrics(wh, metrics, ["t1"], "qa-3", b) == 2  # other settings: measured anew
        record_qa_run(wh, "qa-3", b)
        assert save_trace_metrics(wh, metrics, ["t1"], "qa-4", a) == 0  # and back: stored already
        assert wh.scalar("SELECT count(*) FROM qa_metrics") == 4
        assert sums(a) == sums(b) == [("n_tokens", 1, 5.0), ("solved", 1, 1.0)]
        assert wh.scalar("SELECT measured_key FROM traces") == a


def _labelled(wh, ids, contest=True):
    from tessy.filtering.heuristic import Decision
    from warehouse.labels import save_labels

    wh.con.executemany(
        "INSERT OR IGNORE INTO questions (question_id, text, source, first_run_id) VALUES (?, ?, 's', 'r')",
        [[q, f"question {q}"] for q in ids],
    )
    save_labels(wh, ids, [Decision(contest, None, "", "f", "v1")] * len(ids), "run-filter")


def _finished(wh, ids, recipe, status="ok", stored_recipe=True):
    """Traces of `recipe` for questions `ids`, as the loader stores them (or, without
    `stored_recipe`, as it stored them before traces carried their recipe)."""
    wh.con.execute("DELETE FROM traces WHERE question_id IN (SELECT unnest(?::VARCHAR[]))", [ids])
    wh.con.execute(
        "INSERT INTO traces (trace_id, question_id, run_id, method, status, nights, recipe)"
        " SELECT sha256(? || q || ?), q, 'run-synth', ?, ?, 1, ? FROM unnest(?::VARCHAR[]) t(q)",
        [
            recipe.prefix,
            recipe.suffix,
            recipe.method,
            status,
            recipe.recipe_id if stored_recipe else None,
            ids,
        ],
    )


def test_a_plan_reads_only_the_labels_after_its_recipes_mark(tmp_path):
    """Each plan moves a recipe's mark up to the first contest question without a done trace, and the
    next plan reads only the labels after it. A new question, one labelled again, a night that never
    loaded, a failed trace within its retries and a new recipe are all planned."""
    from tessy.synthesis.identity import Recipe
    from warehouse.traces import jobs_to_synthesize

    old = Recipe("teacher-only", "r-old", '{"q":"', '","v":1}')
    new = Recipe("teacher-only", "r-new", '{"q":"', '","v":2}')
    with open_warehouse(tmp_path / "wh.duckdb") as wh:

        def plan(recipe=old, retry=0):
            return jobs_to_synthesize(wh, "f", "v1", [recipe], retry)["question_id"].to_list()

        def mark(recipe=old, retry=0):
            return wh.scalar(
                "SELECT through FROM plan_marks WHERE recipe = ? AND retry_failed = ?",
                [recipe.recipe_id, retry],
            )

        def seq(question):
            return wh.scalar("SELECT seq FROM question_labels WHERE question_id = ?", [question])

        _labelled(wh, ["a", "b", "c"])
        assert plan() == ["a", "b", "c"] and mark() == seq("a") - 1
        _finished(wh, ["a", "b"], old)  # c's night never loaded
        assert plan() == ["c"] and mark() == seq("c") - 1
        _finished(wh, ["c"], old)
        assert plan() == [] and mark() == seq("c")

        _labelled(wh, ["d"])
        _labelled(wh, ["e"], contest=None)  # undecided: not a contest question yet
        assert plan() == ["d"]
        _labelled(wh, ["e"])  # decided on a later night: written again, after the mark
        assert plan() == ["d", "e"]
        _finished(wh, ["d", "e"], old, status="failed")
        assert plan(retry=0) == [] and plan(retry=1) == ["d", "e"]  # one more try each: its own mark
        assert plan(new) == ["a", "b", "c", "d", "e"]  # new settings: every question again

        # Nothing below a mark is read again: a trace taken away under it (only a test does that) is
        # not planned, while a fresh mark (another retry count) reads every label.
        wh.con.execute("DELETE FROM traces WHERE question_id = 'a'")
        assert plan() == [] and plan(retry=2) == ["a", "d", "e"]


def test_a_plan_over_a_million_stored_traces_brings_only_the_new_work_out_of_duckdb(tmp_path, monkeypatch):
    """With a million contest questions planned and done, a night's plan of 100 new ones receives no
    query result larger than its new work: the history stays in the warehouse."""
    from tessy.synthesis.identity import Recipe
    from warehouse.db import Warehouse
    from warehouse.traces import jobs_to_synthesize

    recipe = Recipe("teacher-only", "r", '{"q":"', '","v":1}')
    with open_warehouse(tmp_path / "wh.duckdb") as wh:
        wh.con.execute(
            "INSERT INTO questions (question_id, text, source, first_run_id)"
            " SELECT 'h' || lpad(i::VARCHAR, 7, '0'), 'question', 's', 'r' FROM range(1000000) t(i)"
        )
        wh.con.execute(
            "INSERT INTO question_labels (question_id, filter, filter_version, is_contest, run_id)"
            " SELECT question_id, 'f', 'v1', true, 'r' FROM questions ORDER BY question_id"
        )
        wh.con.execute(
            "INSERT INTO traces (trace_id, question_id, run_id, method, status, nights, recipe)"
            " SELECT sha256(? || question_id || ?), question_id, 'run', 'teacher-only', 'ok', 1, 'r'"
            " FROM questions",
            [recipe.prefix, recipe.suffix],
        )
        assert jobs_to_synthesize(wh, "f", "v1", [recipe], 0).height == 0  # the night before: its mark
        _labelled(wh, [f"n{i:03d}" for i in range(100)])
        rows: list[int] = []
        frame = Warehouse.frame

        def counted(*args, **kwargs):
            result = frame(*args, **kwargs)
            rows.append(result.height)
            return result

        monkeypatch.setattr(Warehouse, "frame", counted)
        jobs = jobs_to_synthesize(wh, "f", "v1", [recipe], 0)
        assert jobs.height == 100 and max(rows) == 100


def test_a_trace_stored_before_its_recipe_is_recognized_by_the_next_plan(tmp_path):
    from tessy.synthesis.identity import Recipe
    from warehouse.traces import jobs_to_synthesize

    recipe = Recipe("student-only", "r-1", '{"q":"', '","v":1}')
    with open_warehouse(tmp_path / "wh.duckdb") as wh:
        _labelled(wh, ["a", "b"])
        _finished(wh, ["a"], recipe, stored_recipe=False)
        todo = jobs_to_synthesize(wh, "f", "v1", [recipe], 0)
        assert todo.select("question_id", "recipe").rows() == [("b", "r-1")]
        assert wh.frame("SELECT question_id, recipe FROM traces").rows() == [("a", "r-1")]


def test_migrating_a_warehouse_with_history_keeps_its_qa_summary(tmp_path):
    """Migration 0011 on a warehouse of the version before: every trace measured is marked measured
    under its QA settings, the per-method sums equal the stored metrics', and each label gets its
    place in the order, so the first night after it measures and plans nothing old again."""
    from tessy.quality.metrics import method_metrics, per_trace_sums

    path = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(path))
    migrate(con, target=10)
    for q in ("a", "b", "c"):
        con.execute(
            "INSERT INTO questions (question_id, text, source, first_run_id) VALUES (?, 'x', 's', 'r')", [q]
        )
        con.execute("INSERT INTO question_labels VALUES (?, 'f', 'v1', true, NULL, '', 'run')", [q])
    con.executemany(
        "INSERT INTO traces (trace_id, question_id, run_id, method, student_model, teacher_model, status,"
        " attempts) VALUES (?, ?, 'r', ?, 's', 't', ?, 1)",
        [
            ["t-a", "a", "tessy", "ok"],
            ["t-b", "b", "tessy", "ok"],
            ["t-c", "c", "student-only", "ok"],
            ["t-x", "c", "tessy", "failed"],
        ],
    )
    # A trace without its models (no config's summary holds it), measured all the same.
    con.execute(
        "INSERT INTO traces (trace_id, question_id, run_id, method, status)"
        " VALUES ('t-n', 'c', 'r', 'tessy', 'ok')"
    )
    con.execute("INSERT INTO qa_runs VALUES ('qa-1', 'k1'), ('qa-2', 'k2')")
    con.executemany(
        "INSERT INTO qa_metrics VALUES (?, ?, ?, ?)",
        [
            ["t-a", "solved", 1, "qa-1"],
            ["t-b", "solved", 0, "qa-1"],
            ["t-c", "solved", 1, "qa-1"],
            ["t-a", "solved", 0, "qa-2"],
            ["t-n", "solved", 1, "qa-1"],
            ["qa-1/tessy", "solved_mean", 0.5, "qa-1"],  # a per-method row: not a trace's
        ],
    )
    con.close()
    with open_warehouse(path) as wh:
        keys = wh.frame("SELECT trace_id, measured_key FROM traces ORDER BY 1").rows()
        assert keys == [("t-a", "k2"), ("t-b", "k1"), ("t-c", "k1"), ("t-n", "k1"), ("t-x", None)]
        assert [r[0] for r in wh.con.execute("SELECT seq FROM question_labels ORDER BY 1").fetchall()] == [
            1,
            2,
            3,
        ]
        traces = "(SELECT * FROM traces WHERE student_model = 's' AND teacher_model = 't')"
        for key in ("k1", "k2"):
            per_trace = (
                f"(FROM qa_metrics JOIN qa_runs USING (run_id) WHERE qa_key = '{key}'"
                " AND subject_id NOT LIKE '%/%')"
            )
            sums = f"(SELECT method, metric, n, total FROM qa_sums WHERE qa_key = '{key}')"
            stored = method_metrics(wh.con, "r", traces=traces, sums=sums).sort("subject_id", "metric")
            recomputed = method_metrics(wh.con, "r", traces=traces, sums=per_trace_sums(per_trace, traces))
            assert stored.equals(recomputed.sort("subject_id", "metric"))
        assert wh.frame("SELECT method, n, total FROM qa_sums WHERE qa_key = 'k1' ORDER BY 1").rows() == [
            ("student-only", 1, 1.0),
            ("tessy", 2, 1.0),
        ]
        assert "qa_metrics_key" not in {
            r[0] for r in wh.con.execute("SELECT index_name FROM duckdb_indexes()").fetchall()
        }
