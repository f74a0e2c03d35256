"""QA metrics: the traces QA reads (only those not measured yet), the metrics it writes, and the
per-method summary of every trace's metrics."""

from __future__ import annotations

from typing import Any

import polars as pl

from tessy.config import PipelineConfig
from tessy.quality.metrics import method_metrics
from tessy.quality.report import summary_table
from tessy.quality.traces import REFERENCE_METHOD
from warehouse.db import Warehouse, registered


def trace_frame(wh: Warehouse, cfg: PipelineConfig, methods: list[str] | None = None) -> pl.DataFrame:
    """This config's traces (its two models), each with its question and the question's tests."""
    sql = """
        SELECT t.*, q.text AS question, json_extract_string(q.metadata_json, '$.test_cases') AS test_cases
        FROM traces t JOIN questions q USING (question_id)
        WHERE t.student_model = ? AND t.teacher_model = ?
    """
    params: list[Any] = [cfg.model("student").name_on_server, cfg.model("teacher").name_on_server]
    if methods:
        sql += " AND t.method IN (SELECT unnest(?))"
        params.append(methods)
    return wh.frame(sql + " ORDER BY t.trace_id", params)


def save_trace_metrics(wh: Warehouse, metrics: pl.DataFrame, run_id: str, key: str) -> int:
    """Store a run's per-trace metrics, but none that a run with the same settings (`key`) stored
    already (two QA runs at once measure the same new traces): the warehouse keeps one value per
    trace, metric and settings. Returns the rows stored."""
    rows = metrics.select("subject_id", "metric", pl.col("value").cast(pl.Float64))
    with registered(wh.con, "_metrics", rows.to_arrow()):
        return wh.con.execute(
            """
            INSERT INTO qa_metrics
            SELECT n.subject_id, n.metric, n.value, $run_id FROM _metrics n
            ANTI JOIN (
                SELECT subject_id, metric FROM qa_metrics JOIN qa_runs USING (run_id) WHERE qa_key = $key
            ) USING (subject_id, metric)
            """,
            {"run_id": run_id, "key": key},
        ).fetchall()[0][0]


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
    """This config's traces with no per-trace metric under `key` (the QA settings), plus the finished
    reference (student-only) traces of their questions, which the similarity compares them with, each
    with its question and tests; and the ids among them that were measured before. A night reads only
    its new traces, whatever the warehouse's history."""
    frame = wh.frame(
        """
        WITH config AS (
            -- Ids only: a CTE read twice is materialized, and the history's texts must not be.
            SELECT trace_id, question_id, method, status FROM traces
            WHERE student_model = $student AND teacher_model = $teacher
        ), measured AS (
            SELECT DISTINCT m.subject_id AS trace_id FROM qa_metrics m JOIN qa_runs r USING (run_id)
            WHERE r.qa_key = $key AND m.subject_id NOT LIKE '%/%'
        ), new AS (
            SELECT trace_id, question_id FROM config ANTI JOIN measured USING (trace_id)
        ), wanted AS (
            SELECT trace_id FROM new
            UNION
            SELECT trace_id FROM config WHERE method = $reference AND status = 'ok'
                AND question_id IN (SELECT question_id FROM new)
        )
        SELECT t.*, q.text AS question, json_extract_string(q.metadata_json, '$.test_cases') AS test_cases,
               t.trace_id IN (SELECT trace_id FROM measured) AS measured
        FROM (FROM traces SEMI JOIN wanted USING (trace_id)) t JOIN questions q USING (question_id)
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
    """Per-method metrics of this config's traces (subject "{run_id}/{method}"), from every trace's
    newest per-trace metrics under `key`: summed up in DuckDB, none of the history in memory."""
    traces = """(
        SELECT trace_id, method, status, attempts, n_tokens, n_generated_tokens, n_failed_tokens,
               n_wasted_tokens
        FROM traces WHERE student_model = $student AND teacher_model = $teacher
    )"""
    # One value per trace and metric under a key (see `save_trace_metrics`): no newest to pick.
    per_trace = """(
        SELECT subject_id, metric, value FROM qa_metrics m JOIN qa_runs r USING (run_id)
        WHERE r.qa_key = $key AND m.subject_id NOT LIKE '%/%'
    )"""
    params = {
        "student": cfg.model("student").name_on_server,
        "teacher": cfg.model("teacher").name_on_server,
        "key": key,
    }
    return method_metrics(wh.con, run_id, traces=traces, per_trace=per_trace, params=params)


def record_qa_run(wh: Warehouse, run_id: str, key: str) -> None:
    """The settings (`qa_key`) a QA run measured with, so a later run with the same ones reuses them."""
    wh.con.execute("INSERT INTO qa_runs VALUES (?, ?)", [run_id, key])
