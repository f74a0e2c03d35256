"""QA: measure this config's traces and report per method.

Reads: the config's traces that no QA run with the same settings (`qa_runs`) measured, with their
questions and tests, and the student-only traces of those questions (the similarity's references);
the per-method summary is summed up in the warehouse from every trace's stored metrics, so a night
costs what its new traces cost. Also the newest evaluate run's summary (shown in the report).
Writes: the new traces in parts and their per-trace metrics under `<storage>/qa/<run_id>/` (the
storage URL, or the workdir: the parts may run on other machines), `qa_metrics` (per trace, and per
method under `<run_id>/<method>`), `qa_runs`, and the report with its plots under
`workdir/qa/<run_id>/`, copied to `<storage>/qa/<run_id>/` when the config names a storage URL.
Servers: the student's, for its NLL, when `qa.nll_engine` picks them (otherwise its weights are loaded
in-process); code runs in the bubblewrap sandbox, or not at all without it unless `qa.unsafe_exec`.
Raises: StageNotReady when the config has no traces yet.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from tessy.config import PipelineConfig
from tessy.errors import StageNotReady
from tessy.progress import Report, Steps, reporting
from tessy.quality.measure import NllScorer, code_exec_mode, measure_traces, qa_key
from tessy.quality.metrics import LONG_SCHEMA, trace_metrics
from tessy.quality.plots import write_plots
from tessy.quality.report import markdown_report, summary_table
from tessy.runtime import Endpoints, load_model, model_endpoints
from tessy.storage import Folder, read_table, shared_storage, store
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
    url: str  # where the report and plots are kept: their copy in the config's storage, or their folder
    evaluation: dict[str, Any] | None = None  # the newest evaluate run's summary


@dataclass
class QAPlan:
    frame: pl.DataFrame  # the traces to measure, and the references they are compared with
    measured: set[str]  # ids in `frame` measured before (references only)
    new: list[str]  # ids in `frame` to measure: the others
    parts: list[str]  # URLs of the new traces in `runner.parts` parts, for `measure_part`
    run_code: bool  # whether code runs on the machine that planned; every part must agree
    code_exec: str  # how it runs there (sandboxed, unsafe, not at all), for the report
    evaluation: dict[str, Any] | None


def run(
    cfg: PipelineConfig, run_id: str, report: Report | None = None, endpoints: Endpoints | None = None
) -> QAOutcome:
    """Measure the traces no QA run measured with these settings, store their metrics, sum up every
    trace's per method (in the warehouse), write the report and plots (of the traces this run read).
    The parts run one after another here; the Prefect flow runs them on the configured runner.
    `endpoints`: servers a caller already runs (the student's score its NLL). `report` gets a
    progress line every half minute."""
    work = plan(cfg, run_id)
    metrics = [measure_part(cfg, part, work.run_code, report) for part in work.parts]
    return finish(cfg, run_id, work, metrics, report, endpoints)


def plan(cfg: PipelineConfig, run_id: str) -> QAPlan:
    """The traces to measure; the new ones written to `<storage>/qa/<run_id>/todo/` in parts."""
    with open_warehouse(cfg.warehouse) as wh:
        if count_traces(wh, cfg) == 0:
            raise StageNotReady("no traces to check for this config: run synthesize first")
        frame, measured = traces_to_measure(wh, cfg, settings_key(cfg))
        evaluation = latest_evaluation(wh)
    new = frame.filter(~pl.col("trace_id").is_in(list(measured)))
    folder = _parts_folder(cfg, run_id) / "todo"
    n = min(cfg.runner.parts, new.height)
    parts = [
        folder.write_table(f"part-{i:04d}.parquet", new.gather_every(n, offset=i).to_arrow())
        for i in range(n)
    ]
    run_code, code_exec = code_exec_mode(cfg.qa.run_code, cfg.qa.unsafe_exec)
    return QAPlan(frame, measured, new["trace_id"].to_list(), parts, run_code, code_exec, evaluation)


def _parts_folder(cfg: PipelineConfig, run_id: str) -> Folder:
    """Where a QA run's parts go: its new traces under `todo/`, their metrics under `metrics/`."""
    return shared_storage(cfg) / "qa" / run_id


def measure_part(cfg: PipelineConfig, part: str, run_code: bool, report: Report | None = None) -> str:
    """The per-trace metrics (tokens, share, repetition, code tests) of the traces of plan part `part`,
    written beside it under `metrics/`; returns their URL. Raises RuntimeError when this machine would
    not run code where the planner's does (no sandbox here), or the other way round: the QA key
    records whether code ran."""
    q = cfg.qa
    runs_here, how = code_exec_mode(q.run_code, q.unsafe_exec)
    if runs_here != run_code:
        raise RuntimeError(f"QA part {part} on {socket.gethostname()}: {how}, unlike the planner's machine")
    steps = Steps("QA part")
    with reporting(report, steps.line):
        metrics = trace_metrics(
            pl.from_arrow(read_table(part)),
            run_code=run_code,
            workers=q.workers,
            timeout_s=q.timeout_s,
            memory_mb=q.memory_mb,
            steps=steps,
            allow_unsafe=q.unsafe_exec,
        )
    todo, name = part.rsplit("/", 1)
    return (Folder(todo.rsplit("/", 1)[0]) / "metrics").write_table(name, metrics.to_arrow())


def finish(
    cfg: PipelineConfig,
    run_id: str,
    work: QAPlan,
    metrics: list[str],
    report: Report | None = None,
    endpoints: Endpoints | None = None,
) -> QAOutcome:
    """The student NLL and the similarity of the new traces, then every metric stored, the per-method
    summary summed up in the warehouse, and the report and plots written."""
    computed = pl.concat([pl.DataFrame(schema=LONG_SCHEMA), *(pl.from_arrow(read_table(m)) for m in metrics)])
    with nll_scorer(cfg, endpoints) if work.parts else nullcontext() as student_nll:
        result = measure_traces(
            work.frame,
            load_model(cfg, "student").tokenizer,
            computed,
            student_nll=student_nll,
            measured=work.measured,
            report=report,
        )
    key = settings_key(cfg)
    with open_warehouse(cfg.warehouse) as wh, transaction(wh.con):
        n_metrics = save_trace_metrics(wh, result.per_trace, work.new, run_id, key)
        record_qa_run(wh, run_id, key)
        per_method = summarize_methods(wh, cfg, key, run_id)
        n_metrics += save_metrics(wh, per_method, run_id)
    parts = _parts_folder(cfg, run_id)
    (parts / "todo").remove()  # the new traces' texts: the warehouse holds them
    (parts / "metrics").remove()
    summary = summary_table(per_method, run_id)
    out = cfg.workdir / "qa" / run_id
    plots = write_plots(work.frame, result.tfidf, out, work.evaluation)
    path = out / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        markdown_report(
            summary,
            plots,
            run_id=run_id,
            relative_to=out,
            notes=[work.code_exec],
            evaluation=work.evaluation,
        )
    )
    n_traces = sum(row["samples"] for row in summary)
    url = store(cfg, f"qa/{run_id}")
    return QAOutcome(
        summary, path, plots, n_traces, n_metrics, work.code_exec, result.n_measured, url, work.evaluation
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
