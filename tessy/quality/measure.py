"""All QA metrics of a run in one call: per-trace and per-method metrics, output similarity to the
student, and the TF-IDF vectors the plots need."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from tessy.hashing import config_hash
from tessy.progress import Report, Steps, reporting
from tessy.quality.metrics import LONG_SCHEMA, method_metrics, trace_metrics
from tessy.quality.report import summary_table
from tessy.quality.sandbox import find_sandbox
from tessy.quality.similarity import Tfidf, similarity_to_reference, tfidf_vectors
from tessy.quality.traces import ok_traces

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Scores the ok traces of a frame under the student: (subject_id=trace_id, metric="student_nll", value).
NllScorer = Callable[[pl.DataFrame, Steps], pl.DataFrame]


@dataclass(frozen=True)
class QAResult:
    per_trace: pl.DataFrame  # (subject_id=trace_id, metric, value) of the traces this run measured
    per_method: pl.DataFrame  # (subject_id="{run_id}/{method}", metric, value)
    similarity: dict[str, float]  # method -> mean TF-IDF cosine to student-only on the same questions
    tfidf: Tfidf | None  # None when no trace is ok
    summary: list[dict[str, Any]]
    code_exec: str  # how (or whether) the answers' code ran, for the report
    n_measured: int  # traces measured by this run; the others' per-trace metrics were given

    @property
    def metrics(self) -> pl.DataFrame:
        """What this run measured, both levels in one long frame, as the warehouse's qa_metrics stores
        them (per-trace metrics that were given are stored already)."""
        return pl.concat([self.per_trace, self.per_method])


def measure_traces(
    frame: pl.DataFrame,
    run_id: str,
    tokenizer: PreTrainedTokenizerBase,
    *,
    student_nll: NllScorer | None = None,
    run_code: bool = True,
    workers: int = 2,
    timeout_s: float = 5.0,
    memory_mb: int = 512,
    allow_unsafe: bool = False,
    measured: pl.DataFrame | None = None,
    report: Report | None = None,
) -> QAResult:
    """QA of a trace frame. `tokenizer` is the student's (transformers, fast); the student NLL is
    scored only when a `student_nll` scorer is given. Code runs only in a sandbox, unless `allow_unsafe`.
    `measured`: per-trace metrics known from earlier runs with the same settings; only the other
    traces are measured, while similarity and per-method metrics cover the whole frame.
    `report` gets a progress line every half minute."""
    run_code, code_exec = code_exec_mode(run_code, allow_unsafe)
    known = measured if measured is not None else pl.DataFrame(schema=LONG_SCHEMA)
    known = known.filter(pl.col("subject_id").is_in(frame["trace_id"].implode()))
    new = frame.filter(~pl.col("trace_id").is_in(known["subject_id"].unique().implode()))
    steps = Steps(f"QA of {frame.height} traces ({new.height} new)")
    with reporting(report, steps.line):
        steps.begin("trace metrics")
        per_trace = (
            pl.DataFrame(schema=LONG_SCHEMA)
            if new.height == 0
            else trace_metrics(
                new,
                run_code=run_code,
                workers=workers,
                timeout_s=timeout_s,
                memory_mb=memory_mb,
                steps=steps,
                allow_unsafe=allow_unsafe,
            )
        )
        if student_nll is not None and new.height:
            steps.begin("student NLL")
            per_trace = pl.concat([per_trace, student_nll(new, steps)])
        steps.begin("TF-IDF similarity")
        tfidf = tfidf_vectors(frame, tokenizer) if ok_traces(frame).height else None
        steps.begin("done")
    similarity = similarity_to_reference(tfidf) if tfidf is not None else {}
    per_method = method_metrics(frame, pl.concat([known, per_trace]), run_id, similarity)
    summary = summary_table(per_method, run_id)
    return QAResult(per_trace, per_method, similarity, tfidf, summary, code_exec, new.height)


def qa_key(settings: dict[str, Any], code_exec: str) -> str:
    """What per-trace metrics depend on: the QA settings and how code ran (sandboxed, unsafe, not)."""
    return config_hash({"qa": settings, "code_exec": code_exec})


def code_exec_mode(run_code: bool, allow_unsafe: bool) -> tuple[bool, str]:
    """Whether the answers' code runs, and a line saying how: in the sandbox, not at all (no sandbox
    and no permission to run unisolated), or unisolated because the config allowed it."""
    if not run_code:
        return False, "code tests off (qa.run_code: false)"
    sandbox = find_sandbox()
    if sandbox.isolated:
        return True, f"code ran in a bubblewrap sandbox ({sandbox.python})"
    if allow_unsafe:
        return True, f"UNSAFE: code ran without isolation (qa.unsafe_exec: true); {sandbox.reason}"
    return (
        False,
        f"code NOT run: {sandbox.reason}; install bubblewrap (or set qa.unsafe_exec on a throwaway machine)",
    )
