"""The per-trace QA metrics of a run: the parts' token counts, share, repetition and code tests, with
the student NLL, output similarity to the student, and the TF-IDF vectors the plots need. Per-method
metrics are summed up from the stored per-trace ones (`tessy.quality.metrics.method_metrics`)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from tessy.hashing import config_hash
from tessy.progress import Report, Steps, reporting
from tessy.quality.metrics import LONG_SCHEMA
from tessy.quality.sandbox import find_sandbox
from tessy.quality.similarity import Tfidf, similarity_per_trace, tfidf_vectors
from tessy.quality.traces import ok_traces

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Scores the ok traces of a frame under the student: (subject_id=trace_id, metric="student_nll", value).
NllScorer = Callable[[pl.DataFrame, Steps], pl.DataFrame]


@dataclass(frozen=True)
class QAResult:
    per_trace: pl.DataFrame  # (subject_id=trace_id, metric, value) of the traces this run measured
    tfidf: Tfidf | None  # of every ok trace of the frame; None when none is ok
    n_measured: int  # traces measured by this run; the frame's others were measured before


def measure_traces(
    frame: pl.DataFrame,
    tokenizer: PreTrainedTokenizerBase,
    computed: pl.DataFrame,
    *,
    student_nll: NllScorer | None = None,
    measured: Collection[str] = (),
    report: Report | None = None,
) -> QAResult:
    """QA of the traces of `frame` not in `measured` (ids measured before with the same settings; they
    are in the frame as references for the similarity: the student-only responses to the same
    questions): `computed`, their `trace_metrics` (the QA parts compute them, code tests included),
    with the student NLL when a `student_nll` scorer is given and the similarity to the student.
    `tokenizer` is the student's (transformers, fast). `report` gets a progress line every half
    minute."""
    new = frame.filter(~pl.col("trace_id").is_in(list(measured)))
    steps = Steps(f"QA of {new.height} traces")
    parts = [computed]
    with reporting(report, steps.line):
        if student_nll is not None and new.height:
            steps.begin("student NLL")
            parts.append(student_nll(new, steps))
        steps.begin("TF-IDF similarity")
        tfidf = tfidf_vectors(frame, tokenizer) if ok_traces(frame).height else None
        if tfidf is not None:
            parts.append(similarity_per_trace(tfidf, set(new["trace_id"])))
        steps.begin("done")
    per_trace = pl.concat([p.cast(LONG_SCHEMA) for p in parts])
    return QAResult(per_trace, tfidf, new.height)


# Bumped when the set of per-trace metrics changes, so traces stored before are measured again:
# 2 made the similarity to the student a per-trace metric.
METRICS_VERSION = 2


def qa_key(settings: dict[str, Any], code_exec: str) -> str:
    """What per-trace metrics depend on: the QA settings, how code ran (sandboxed, unsafe, not) and
    which metrics there are."""
    return config_hash({"qa": settings, "code_exec": code_exec, "metrics": METRICS_VERSION})


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
