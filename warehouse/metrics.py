"""QA metrics: the traces QA reads (only those not measured yet), the metrics it writes, and the
per-method summary of every trace's metrics."""

from __future__ import annotations

from typing import Any

import polars as pl
import pyarrow as pa

from tessy.config import PipelineConfig
from tessy.quality.metrics import method_metrics
from tessy.quality.report import summary_table
from tessy.quality.traces import REFERENCE_METHOD
from warehouse.db import Warehouse, registered

# A trace's question's tests, from the metadata the question was ingested with (`q`: questions).
TEST_CASES = "json_extract_string(q.metadata_json, '$.test_cases') AS test_cases"


def trace_frame(wh: Warehouse, cfg: PipelineConfig, methods: list[str] | None = None) -> pl.DataFrame:
    """This config's traces (its two models), each with its question and the question's tests."""
    sql = f"""
        SELECT t.* EXCLUDE (measured_key), q.text AS question,
               {TEST_CASES}
        FROM traces t JOIN questions q USING (question_id)
        WHERE t.student_model = ? AND t.teacher_model = ?
    """
    params: list[Any] = [cfg.model("student").name_on_server, cfg.model("teacher").name_on_server]
    if methods:
        sql += " AND t.method IN (SELECT unnest(?))"
        params.append(methods)
    return wh.frame(sql + " ORDER BY t.trace_id", params)


def save_trace_metrics(
    wh: Warehouse, metrics: pl.DataFrame, measured: list[str], run_id: str, key: str
) -> int:
    """Store a run's per-trace metrics of the traces `measured` (a failed trace has none), add them to
    the per-method sums (`qa_sums`) and mark those traces measured under `key` (the QA settings), but
    store none that a run with the same settings stored already: the warehouse keeps one value per
    trace, metric and settings. Only the rows of the traces `measured` are read, and the stored
    metrics only for those of them measured before (under any settings: another QA run at the same
    time, or settings switched back). Returns the rows stored."""
    rows = metrics.select("subject_id", "metric", pl.col("value").cast(pl.Float64))
    ids = pa.table({"trace_id": pa.array(measured, pa.string())})
    con = wh.con
    with registered(con, "_metrics", rows.to_arrow()), registered(con, "_measured", ids):
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _traces AS SELECT trace_id, student_model, teacher_model, method,"
            " measured_key FROM traces WHERE trace_id IN (SELECT trace_id FROM _measured)"
        )
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE _fresh AS
            SELECT n.* FROM _metrics n ANTI JOIN (
                SELECT subject_id, metric FROM qa_metrics JOIN qa_runs USING (run_id)
                WHERE qa_key = $key
                    AND subject_id IN (SELECT trace_id FROM _traces WHERE measured_key IS NOT NULL)
            ) USING (subject_id, metric)
            """,
            {"key": key},
        )
        stored = con.execute(
            "INSERT INTO qa_metrics SELECT subject_id, metric, value, $run_id FROM _fresh", {"run_id": run_id}
        ).fetchall()[0][0]
        con.execute(
            """
            INSERT INTO qa_sums
            SELECT $key, t.student_model, t.teacher_model, t.method, f.metric, count(f.value),
                   coalesce(sum(f.value), 0)
            FROM _fresh f JOIN _traces t ON t.trace_id = f.subject_id
            WHERE t.student_model IS NOT NULL AND t.teacher_model IS NOT NULL  -- in no config's summary
            GROUP BY ALL
            ON CONFLICT DO UPDATE SET n = qa_sums.n + EXCLUDED.n, total = qa_sums.total + EXCLUDED.total
            """,
            {"key": key},
        )
        con.execute(
            "UPDATE traces SET measured_key = $key WHERE trace_id IN (SELECT trace_id FROM _measured)",
            {"key": key},
        )
        con.execute("DROP TABLE _fresh")
        con.execute("DROP TABLE _traces")
    return stored


def save_metrics(wh: Warehouse, metrics: pl.DataFrame, run_id: str) -> int:
    rows = metrics.select("subject_id", "metric", pl.col("value").cast(pl.Float64)).with_columns(
        run_id=pl.lit(run_id)
    )
    with registered(wh.con, "_metrics", rows.to_arrow()):
        wh.con.execute("INSERT INTO qa_metrics SELECT subject_id, metric, value, run_id FROM _metrics")
    return rows.height


def latest_summary(wh: Warehouse) -> list[dict[str, Any]]:
    """The per-method summary table of the most recent QA run (empty before any)."""
    run_id = wh.scalar(
        "SELECT run_id FROM runs WHERE kind = 'qa' AND status = 'completed' ORDER BY started_at DESC"
    )
    if run_id is None:
        return []
    per_method = wh.frame(
        "SELECT subject_id, metric, value FROM qa_metrics WHERE run_id = ? AND subject_id LIKE ? || '/%'",
        [run_id, run_id],
    )
    return summary_table(per_method, run_id)


def traces_to_measure(wh: Warehouse, cfg: PipelineConfig, key: str) -> tuple[pl.DataFrame, set[str]]:
    """This config's traces not measured under `key` (the QA settings), plus the finished reference
    (student-only) traces of their questions, which the similarity compares them with, each with its
    question and tests; and the ids among them that were measured before. A night reads only its new
    traces, whatever the warehouse's history: each trace records the settings it was measured under."""
    frame = wh.frame(
        f"""
        WITH new AS (
            SELECT *, false AS measured FROM traces
            WHERE student_model = $student AND teacher_model = $teacher
                AND measured_key IS DISTINCT FROM $key
        ), picked AS (
            FROM new
            UNION ALL
            SELECT *, true AS measured FROM traces
            WHERE student_model = $student AND teacher_model = $teacher AND method = $reference
                AND status = 'ok' AND measured_key IS NOT DISTINCT FROM $key
                AND question_id IN (SELECT question_id FROM new)
        )
        SELECT t.* EXCLUDE (measured_key), q.text AS question,
               {TEST_CASES}
        FROM picked t JOIN questions q USING (question_id)
        ORDER BY t.trace_id
        """,
        {
            "student": cfg.model("student").name_on_server,
            "teacher": cfg.model("teacher").name_on_server,
            "key": key,
            "reference": REFERENCE_METHOD,
        },
    )
    measured = set(frame.filter(pl.col("measured"))["trace_id"])
    return frame.drop("measured"), measured


def count_traces(wh: Warehouse, cfg: PipelineConfig) -> int:
    """How many traces this config's two models made, finished or not."""
    return wh.scalar(
        "SELECT count(*) FROM traces WHERE student_model = ? AND teacher_model = ?",
        [cfg.model("student").name_on_server, cfg.model("teacher").name_on_server],
    )


def summarize_methods(wh: Warehouse, cfg: PipelineConfig, key: str, run_id: str) -> pl.DataFrame:
    """Per-method metrics of this config's traces (subject "{run_id}/{method}"): the means of every
    trace's per-trace metrics under `key` from their running sums (`qa_sums`), the rest summed up in
    DuckDB from the traces' own columns; none of the history in memory."""
    traces = """(
        SELECT trace_id, method, status, attempts, n_tokens, n_generated_tokens, n_failed_tokens,
               n_wasted_tokens
        FROM traces WHERE student_model = $student AND teacher_model = $teacher
    )"""
    sums = """(
        SELECT method, metric, n, total FROM qa_sums
        WHERE qa_key = $key AND student_model = $student AND teacher_model = $teacher
    )"""
    params = {
        "student": cfg.model("student").name_on_server,
        "teacher": cfg.model("teacher").name_on_server,
        "key": key,
    }
    return method_metrics(wh.con, run_id, traces=traces, sums=sums, params=params)


def record_qa_run(wh: Warehouse, run_id: str, key: str) -> None:
    """The settings (`qa_key`) a QA run measured with, so a later run with the same ones reuses them."""
    wh.con.execute("INSERT INTO qa_runs VALUES (?, ?)", [run_id, key])
