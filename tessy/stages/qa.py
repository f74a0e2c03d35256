"""QA: measure this config's traces and report per method.

Reads: the config's traces (`traces` x `questions`, with each question's tests), the per-trace
metrics of earlier QA runs with the same settings (`qa_runs`), which are not measured again, and the
newest evaluate run's summary (shown in the report with its plot).
Writes: `qa_metrics` (per trace, and per method under `<run_id>/<method>`), `qa_runs`, and the
report with its plots under `workdir/qa/<run_id>/`.
Servers: the student's, for its NLL, when `qa.nll_engine` picks them (otherwise its weights are loaded
in-process); code runs in the bubblewrap sandbox, or not at all without it unless `qa.unsafe_exec`.
Raises: StageNotReady when the config has no traces yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from tessy.config import PipelineConfig
from tessy.errors import StageNotReady
from tessy.progress import Report, Steps
from tessy.quality.measure import NllScorer, code_exec_mode, measure_traces, qa_key
from tessy.quality.plots import write_plots
from tessy.quality.report import markdown_report
from tessy.runtime import Endpoints, load_model, model_endpoints
from warehouse.db import open_warehouse, transaction
from warehouse.evaluations import latest_evaluation
from warehouse.metrics import measured_metrics, record_qa_run, save_metrics, trace_frame

MIN_TRACES_FOR_PLOTS = 3  # the PCA plot needs at least three responses
NLL_MAX_TOKENS = 4096  # prompt + thinking scored per trace, at most (the thinking keeps its start)


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


def run(
    cfg: PipelineConfig, run_id: str, report: Report | None = None, endpoints: Endpoints | None = None
) -> QAOutcome:
    """Score the traces, store the metrics, write the report and plots. Similarity and per-method
    metrics cover all traces; per-trace ones only those not measured before. The warehouse is held only
    to read and to write. `endpoints`: servers a caller already runs (the student's score its NLL).
    `report` gets a progress line every half minute."""
    q = cfg.qa
    # Both NLL engines give the same values (to 1e-3 per token), so the choice does not void metrics.
    key = qa_key(q.model_dump(exclude={"nll_engine"}), code_exec_mode(q.run_code, q.unsafe_exec)[1])
    with open_warehouse(cfg.warehouse) as wh:
        frame = trace_frame(wh, cfg)
        measured = measured_metrics(wh, key)
        evaluation = latest_evaluation(wh)
    if frame.height == 0:
        raise StageNotReady("no traces to check for this config: run synthesize first")
    with nll_scorer(cfg, endpoints) as student_nll:
        result = measure_traces(
            frame,
            run_id,
            load_model(cfg, "student").tokenizer,
            student_nll=student_nll,
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


def nll_on_server(cfg: PipelineConfig, endpoints: Endpoints | None) -> bool:
    """Whether the student NLL is scored by the student's servers (see `qa.nll_engine`)."""
    engine, student = cfg.qa.nll_engine, cfg.model("student")
    if engine == "auto":
        return bool((endpoints or {}).get("student")) or student.engine == "openai"
    if engine == "server" and student.engine == "hf":
        raise ValueError("qa.nll_engine is 'server' but the student has no server (engine: hf)")
    return engine == "server"


@contextmanager
def nll_scorer(cfg: PipelineConfig, endpoints: Endpoints | None) -> Iterator[NllScorer | None]:
    """The student-NLL scorer for the block (None when `qa.student_nll` is off): on the student's
    servers (started for the block when no caller runs them) or in-process."""
    from tessy.quality import nll  # torch loads only when the NLL is asked for

    if not cfg.qa.student_nll:
        yield None
        return
    # The servers must keep one token of their context for the completion they generate.
    max_length = min(NLL_MAX_TOKENS, cfg.model("student").max_model_len - 1)
    if not nll_on_server(cfg, endpoints):
        yield lambda frame, steps: nll.student_nll(
            frame, cfg.model("student").path, max_length=max_length, steps=steps
        )
        return
    given = endpoints if (endpoints or {}).get("student") else None
    with model_endpoints(cfg, ("student",), given) as running:
        student = load_model(cfg, "student", running)

        def on_servers(frame: pl.DataFrame, steps: Steps) -> pl.DataFrame:
            # A fresh engine per call: its HTTP client lives in the event loop of one scoring run.
            engine = load_model(cfg, "student", running).engine
            return nll.served_student_nll(
                frame, student.tokenizer, engine, max_length=max_length, steps=steps
            )

        yield on_servers
