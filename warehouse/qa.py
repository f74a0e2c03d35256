"""QA in the warehouse: the trace frame QA reads, the metrics it writes, and the QA stage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from tessy.config import PipelineConfig
from tessy.quality.measure import code_exec_mode, qa_key, run_qa
from tessy.quality.plots import write_plots
from tessy.quality.report import markdown_report, summary_table
from tessy.runtime import load_model, served_name
from warehouse.db import Warehouse, open_warehouse, registered, transaction

MIN_TRACES_FOR_PLOTS = 3  # the PCA plot needs at least three responses


def trace_frame(wh: Warehouse, cfg: PipelineConfig, methods: list[str] | None = None) -> pl.DataFrame:
    """This config's traces (its two models), each with its question and the question's tests."""
    sql = """
        SELECT t.*, q.text AS question, json_extract_string(q.metadata_json, '$.test_cases') AS test_cases
        FROM traces t JOIN questions q USING (question_id)
        WHERE t.student_model = ? AND t.teacher_model = ?
    """
    params: list[Any] = [served_name(cfg.model("student")), served_name(cfg.model("teacher"))]
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


@dataclass
class QAOutcome:
    summary: list[dict[str, Any]]
    report: Path
    plots: list[Path]
    n_traces: int
    n_metrics: int
    code_exec: str
    n_measured: int


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


def run_qa_stage(cfg: PipelineConfig, run_id: str, report: Callable[[str], None] | None = None) -> QAOutcome:
    """Score this config's traces, store the metrics, and write the report and plots under
    `workdir/qa/<run_id>/`. Traces measured by an earlier run with the same settings are not measured
    again; similarity and per-method metrics cover all. The warehouse is held only to read and write.
    `report` gets a progress line every half minute."""
    q = cfg.qa
    key = qa_key(q.model_dump(), code_exec_mode(q.run_code, q.unsafe_exec)[1])
    with open_warehouse(cfg.warehouse) as wh:
        frame = trace_frame(wh, cfg)
        measured = measured_metrics(wh, key)
    if frame.height == 0:
        raise RuntimeError("no traces to check for this config: run synthesize first")
    student = load_model(cfg, "student")
    result = run_qa(
        frame,
        run_id,
        student.tokenizer,
        student_model_dir=student.config.path if q.student_nll else None,
        run_code=q.run_code,
        workers=q.workers,
        timeout_s=q.timeout_s,
        memory_mb=q.memory_mb,
        allow_unsafe=q.unsafe_exec,
        measured=measured,
        report=report,
    )
    out = cfg.workdir / "qa" / run_id
    ok = frame.filter(pl.col("status") == "ok")
    plots = write_plots(frame, result.tfidf, out) if ok.height >= MIN_TRACES_FOR_PLOTS else []
    report = out / "report.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(
        markdown_report(result.summary, plots, run_id=run_id, relative_to=out, notes=[result.code_exec])
    )
    with open_warehouse(cfg.warehouse) as wh, transaction(wh.con):
        n_metrics = save_metrics(wh, result.metrics, run_id)
        wh.con.execute("INSERT INTO qa_runs VALUES (?, ?)", [run_id, key])
    return QAOutcome(
        result.summary, report, plots, frame.height, n_metrics, result.code_exec, result.n_measured
    )
