"""Scheduler, shards and the warehouse loader: resume after a crash with no duplicate and no loss."""

import asyncio

import pytest

from tessy.boundary.cut import Cut
from tessy.storage import Folder
from tessy.synthesis.batching import BatchedBoundary
from tessy.synthesis.records import Span, Trace
from tessy.synthesis.scheduler import Job, run_jobs
from tessy.synthesis.shards import ShardWriter, finished_ids, read_shards
from warehouse.db import open_warehouse
from warehouse.traces import load_shards


def make_trace(job: Job) -> Trace:
    spans = [Span("student", "Okay.", 1), Span("teacher", " Add.", 1), Span("student", "print(1)", 2)]
    return Trace(
        trace_id=job.trace_id,
        question_id=job.question_id,
        method=job.method,
        student_model="s",
        teacher_model="t",
        predictor_ids="",
        text="<think>\nOkay. Add.\n</think>\n\nprint(1)",
        answer="print(1)",
        spans=spans,
        n_tokens=6,
        n_tokens_teacher=1,
        n_tokens_student=3,
        n_switches=1,
        n_wasted_tokens=0,
        n_generated_tokens=6,
        n_failed_tokens=0,
        status="ok",
        error=None,
        attempts=1,
    )


class CrashingSynthesizer:
    """Finishes samples until `crash_after` have completed, then the next one raises."""

    def __init__(self, crash_after: int | None = None):
        self.crash_after, self.calls, self.finished = crash_after, [], 0

    async def run(self, trace_id, question_id, question, method):
        self.calls.append(trace_id)
        await asyncio.sleep(0.001 * (len(self.calls) % 3))  # samples finish out of order
        if self.crash_after is not None and self.finished >= self.crash_after:
            raise RuntimeError("engine died")
        self.finished += 1
        return make_trace(Job(trace_id, question_id, question, method))


JOBS = [
    Job(f"t{i:03d}", f"q{i // 2}", f"question {i // 2}", ["tessy", "teacher-only"][i % 2]) for i in range(40)
]


def test_crash_loses_only_unfinished_samples_and_rerun_completes_without_duplicates(tmp_path):
    shards = Folder(tmp_path / "shards")
    with pytest.raises(ExceptionGroup):
        asyncio.run(
            run_jobs(
                CrashingSynthesizer(crash_after=13),
                JOBS,
                ShardWriter(shards, 5),
                concurrency=4,
                show_progress=False,
            )
        )
    first = finished_ids(shards)
    assert len(first) == 13  # every finished sample reached a shard, even the unflushed remainder
    assert not list((tmp_path / "shards").glob("*.tmp"))

    resumed = CrashingSynthesizer()
    stats = asyncio.run(run_jobs(resumed, JOBS, ShardWriter(shards, 5), concurrency=4, show_progress=False))
    assert stats.skipped == 13 and stats.done == 27
    assert not set(resumed.calls) & first  # finished samples are not redone
    ids = read_shards(shards)[0].column("trace_id").to_pylist()
    assert sorted(ids) == sorted(j.trace_id for j in JOBS)  # no loss, no duplicate


def test_loader_is_idempotent_and_explodes_spans(tmp_path):
    shards = Folder(tmp_path / "shards")
    asyncio.run(run_jobs(CrashingSynthesizer(), JOBS[:6], ShardWriter(shards, 4), show_progress=False))
    with open_warehouse(tmp_path / "wh.duckdb") as wh:
        assert load_shards(wh, shards, "run-1") == {"traces": 6, "spans": 18, "quarantined_shards": 0}
        assert load_shards(wh, shards, "run-2") == {"traces": 0, "spans": 0, "quarantined_shards": 0}
        assert wh.scalar("SELECT count(*) FROM shard_ledger") == 2  # 6 traces in shards of 4
        # A later night reads only its own shard, not the history (the ledger skips the first two).
        asyncio.run(run_jobs(CrashingSynthesizer(), JOBS[6:9], ShardWriter(shards, 4), show_progress=False))
        assert load_shards(wh, shards, "run-3") == {"traces": 3, "spans": 9, "quarantined_shards": 0}
        assert wh.frame("SELECT run_id, sum(n_rows) AS n FROM shard_ledger GROUP BY 1 ORDER BY 1").rows() == [
            ("run-1", 6),
            ("run-3", 3),
        ]
        rows = wh.frame("SELECT idx, author, text FROM spans WHERE trace_id = 't000' ORDER BY idx").rows()
        runs = wh.frame("SELECT run_id, count(*) AS n FROM traces GROUP BY 1 ORDER BY 1").rows()
    assert rows == [(0, "student", "Okay."), (1, "teacher", " Add."), (2, "student", "print(1)")]
    assert runs == [("run-1", 6), ("run-3", 3)]


def test_the_loader_keeps_each_trace_once_and_never_touches_a_finished_one(tmp_path):
    """The tables hold no key index: the loader alone keeps a trace id once. A trace in two shards is
    taken once (its finished attempt), one already finished is not touched by a later shard, and a
    failed one is replaced, spans included."""
    from dataclasses import replace

    def trace(trace_id: str, status: str = "ok", text: str = "print(1)") -> Trace:
        made = make_trace(Job(trace_id, "q", "question", "tessy"))
        return replace(
            made, status=status, answer=text, spans=made.spans[:2] if status != "ok" else made.spans
        )

    shards = Folder(tmp_path / "shards")
    with open_warehouse(tmp_path / "wh.duckdb") as wh:
        first = ShardWriter(shards, 8)
        for t in (trace("a"), trace("b", "failed")):
            first.add(t)
        first.flush()
        assert load_shards(wh, shards, "run-1") == {"traces": 2, "spans": 5, "quarantined_shards": 0}
        later = ShardWriter(shards, 8)
        for t in (trace("a", text="print(2)"), trace("b"), trace("c", "failed"), trace("c")):
            later.add(t)
        later.flush()
        assert load_shards(wh, shards, "run-2") == {"traces": 2, "spans": 6, "quarantined_shards": 0}
        rows = wh.frame("SELECT trace_id, run_id, status, nights, answer FROM traces ORDER BY 1").rows()
        spans = wh.frame(
            "SELECT trace_id, count(*) AS n, count(DISTINCT idx) AS idx FROM spans GROUP BY 1 ORDER BY 1"
        )
    assert rows == [
        ("a", "run-1", "ok", 1, "print(1)"),  # finished: the later attempt is not taken
        ("b", "run-2", "ok", 2, "print(1)"),  # failed, replaced by its next night's attempt
        ("c", "run-2", "ok", 1, "print(1)"),  # twice in one load: the finished attempt, once
    ]
    assert spans.rows() == [("a", 3, 3), ("b", 3, 3), ("c", 3, 3)]


class RecordingPredictor:
    """Records the keys of each batch it is asked; cuts nothing (or raises, when told to)."""

    def __init__(self, error: Exception | None = None):
        self.batches: list[list[str]] = []
        self.error = error

    def predict(self, requests):
        self.batches.append([r.key for r in requests])
        if self.error:
            raise self.error
        return [Cut(len(r.new), False) for r in requests]

    def release(self, key):
        pass


def _ask(boundary: BatchedBoundary, key: str, after: float = 0.0):
    async def ask():
        await asyncio.sleep(after)
        return await boundary.cut(key, "ctx", " new words", "student")

    return ask()


async def _gather(*calls):
    return await asyncio.gather(*calls, return_exceptions=True)


def test_batched_boundary_gathers_the_samples_that_ask_within_its_window():
    predictor = RecordingPredictor()
    boundary = BatchedBoundary(predictor, gather_s=0.1)
    cuts = asyncio.run(_gather(*(_ask(boundary, f"s{i}") for i in range(3)), _ask(boundary, "late", 0.02)))
    assert predictor.batches == [["s0", "s1", "s2", "late"]]
    assert cuts == [Cut(len(" new words"), False)] * 4
    # Without a window the first sample's forward starts before the late one asks.
    predictor = RecordingPredictor()
    boundary = BatchedBoundary(predictor, gather_s=0)
    asyncio.run(_gather(_ask(boundary, "s0"), _ask(boundary, "late", 0.02)))
    assert predictor.batches == [["s0"], ["late"]]


def test_batched_boundary_asks_each_sample_once_a_forward_and_passes_errors_on():
    predictor = RecordingPredictor()
    boundary = BatchedBoundary(predictor, gather_s=0.01)
    asyncio.run(_gather(_ask(boundary, "a"), _ask(boundary, "a"), _ask(boundary, "b")))
    assert predictor.batches == [["a", "b"], ["a"]]
    failing = BatchedBoundary(RecordingPredictor(ValueError("bad window")), gather_s=0.01)
    results = asyncio.run(_gather(_ask(failing, "a"), _ask(failing, "b")))
    assert [str(r) for r in results] == ["bad window", "bad window"]
