"""QA: measure this config's traces and report per method.

Reads: the config's traces (`traces` x `questions`, with each question's tests), the per-trace
metrics of earlier QA runs with the same settings (`qa_runs`), which are not measured again, and the
newest evaluate run's summary (shown in the report with its plot).
Writes: `qa_metrics` (per trace, and per method under `<run_id>/<method>`), `qa_runs`, and the
report with its plots under `workdir/qa/<run_id>/`.
Servers: none (the student's tokenizer, and its weights for the NLL, are loaded in-process; code runs
in the bubblewrap sandbox, or not at all without it unless `qa.unsafe_exec`).
Raises: StageNotReady when the config has no traces yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from tessy.config import PipelineConfig
from tessy.errors import StageNotReady
from tessy.progress import Report
from tessy.quality.measure import code_exec_mode, measure_traces, qa_key
from tessy.quality.plots import write_plots
from tessy.quality.report import markdown_report
from tessy.runtime import load_model
from warehouse.db import open_warehouse, transaction
from warehouse.evaluations import latest_evaluation
from warehouse.metrics import measured_metrics, record_qa_run, save_metrics, trace_frame

MIN_TRACES_FOR_PLOTS = 3  # the PCA plot needs at least three responses


@dataclass
class QAOutcome:
    summary: list[dict[str, Any]]
    report: Path
    plots: list[Path]
    n_traces: int
    n_metrics: int
    code_exec: str  # whether generated code ran, and how (sandboxed, unsafe, not at all)
    n_measured: int
    evaluation: dict[str, Any] | None = None  # the newest evaluate run's summary


def run(cfg: PipelineConfig, run_id: str, report: Report | None = None) -> QAOutcome:
    """Score the traces, store the metrics, write the report and plots. Similarity and per-method
    metrics cover all traces; per-trace ones only those not measured before. The warehouse is held only
    to read and to write. `report` gets a progress line every half minute."""
    q = cfg.qa
    key = qa_key(q.model_dump(), code_exec_mode(q.run_code, q.unsafe_exec)[1])
    with open_warehouse(cfg.warehouse) as wh:
        frame = trace_frame(wh, cfg)
        measured = measured_metrics(wh, key)
        evaluation = latest_evaluation(wh)
    if frame.height == 0:
        raise StageNotReady("no traces to check for this config: run synthesize first")
    student = load_model(cfg, "student")
    result = measure_traces(
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
    plots = write_plots(frame, result.tfidf, out, evaluation) if ok.height >= MIN_TRACES_FOR_PLOTS else []
    path = out / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        markdown_report(
            result.summary,
            plots,
            run_id=run_id,
            relative_to=out,
            notes=[result.code_exec],
            evaluation=evaluation,
        )
    )
    with open_warehouse(cfg.warehouse) as wh, transaction(wh.con):
        n_metrics = save_metrics(wh, result.metrics, run_id)
        record_qa_run(wh, run_id, key)
    return QAOutcome(
        result.summary, path, plots, frame.height, n_metrics, result.code_exec, result.n_measured, evaluation
    )
