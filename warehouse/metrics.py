"""QA metrics: the trace frame QA reads, the metrics it writes, and what earlier QA runs measured."""

from __future__ import annotations

from typing import Any

import polars as pl

from tessy.config import PipelineConfig
from tessy.quality.report import summary_table
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


def measured_metrics(wh: Warehouse, key: str) -> pl.DataFrame:
    """Per-trace metrics of earlier QA runs with the same settings (`qa_key`), the newest per metric."""
    return wh.frame(
        """
        SELECT subject_id, metric, arg_max(value, m.run_id) AS value
        FROM qa_metrics m JOIN qa_runs r USING (run_id)
        WHERE r.qa_key = ? AND m.subject_id NOT LIKE '%/%'
        GROUP BY subject_id, metric
        """,
        [key],
    )


def record_qa_run(wh: Warehouse, run_id: str, key: str) -> None:
    """The settings (`qa_key`) a QA run measured with, so a later run with the same ones reuses them."""
    wh.con.execute("INSERT INTO qa_runs VALUES (?, ?)", [run_id, key])
