"""QA: measure this config's traces and report per method.

Reads: the config's traces that no QA run with the same settings (`qa_runs`) measured, with their
questions and tests, and the student-only traces of those questions (the similarity's references);
the per-method summary is summed up in the warehouse from every trace's stored metrics, so a night
costs what its new traces cost. Also the newest evaluate run's summary (shown in the report).
Writes: `qa_metrics` (per trace, and per method under `<run_id>/<method>`), `qa_runs`, and the
report with its plots under `workdir/qa/<run_id>/`.
Servers: the student's, for its NLL, when `qa.nll_engine` picks them (otherwise its weights are loaded
in-process); code runs in the bubblewrap sandbox, or not at all without it unless `qa.unsafe_exec`.
Raises: StageNotReady when the config has no traces yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from tessy.config import PipelineConfig
from tessy.errors import StageNotReady
from tessy.progress import Report, Steps
from tessy.quality.measure import NllScorer, code_exec_mode, measure_traces, qa_key
from tessy.quality.plots import write_plots
from tessy.quality.report import markdown_report, summary_table
from tessy.runtime import Endpoints, load_model, model_endpoints
from warehouse.db import open_warehouse, transaction
from warehouse.evaluations import latest_evaluation
from warehouse.metrics import (
    count_traces,
    record_qa_run,
    save_metrics,
    save_trace_metrics,
    summarize_methods,
    traces_to_measure,
)

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
    """Measure the traces no QA run measured with these settings, store their metrics, sum up every
    trace's per method (in the warehouse), write the report and plots (of the traces this run read).
    The warehouse is held only to read and to write. `endpoints`: servers a caller already runs (the
    student's score its NLL). `report` gets a progress line every half minute."""
    q = cfg.qa
    key = settings_key(cfg)
    with open_warehouse(cfg.warehouse) as wh:
        if count_traces(wh, cfg) == 0:
            raise StageNotReady("no traces to check for this config: run synthesize first")
        frame, measured = traces_to_measure(wh, cfg, key)
        evaluation = latest_evaluation(wh)
    with nll_scorer(cfg, endpoints) if frame.height > len(measured) else nullcontext() as student_nll:
        result = measure_traces(
            frame,
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
    with open_warehouse(cfg.warehouse) as wh, transaction(wh.con):
        n_metrics = save_trace_metrics(wh, result.per_trace, run_id, key)
        record_qa_run(wh, run_id, key)
        per_method = summarize_methods(wh, cfg, key, run_id)
        n_metrics += save_metrics(wh, per_method, run_id)
    summary = summary_table(per_method, run_id)
    out = cfg.workdir / "qa" / run_id
    plots = write_plots(frame, result.tfidf, out, evaluation)
    path = out / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        markdown_report(
            summary, plots, run_id=run_id, relative_to=out, notes=[result.code_exec], evaluation=evaluation
        )
    )
    n_traces = sum(row["samples"] for row in summary)
    return QAOutcome(
        summary, path, plots, n_traces, n_metrics, result.code_exec, result.n_measured, evaluation
    )


def settings_key(cfg: PipelineConfig) -> str:
    """What this config's per-trace QA metrics depend on (`qa_key`): a trace measured under the same
    key is not measured again."""
    q = cfg.qa
    # Both NLL engines give the same values (to 1e-3 per token), so the choice does not void metrics.
    return qa_key(q.model_dump(exclude={"nll_engine"}), code_exec_mode(q.run_code, q.unsafe_exec)[1])


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
