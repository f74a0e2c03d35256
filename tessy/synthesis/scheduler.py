"""Run many samples as independent coroutines under a concurrency cap — never in lock-step — and
stream finished traces into shards. A rerun skips traces already in the shards; an interrupt loses
only the samples still running."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tessy.progress import Report, reporting
from tessy.synthesis.machine import Synthesizer
from tessy.synthesis.shards import ShardWriter, finished_ids


@dataclass(frozen=True)
class Job:
    trace_id: str
    question_id: str
    question: str
    method: str
    recipe: str = ""  # the trace's recipe id (tessy/synthesis/identity.py), stored with it


@dataclass
class RunStats:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    tokens: int = 0
    teacher_tokens: int = 0
    seconds: float = 0.0
    by_method: dict[str, int] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def teacher_share(self) -> float:
        return self.teacher_tokens / self.tokens if self.tokens else 0.0


async def run_jobs(
    synthesizer: Synthesizer,
    jobs: Iterable[Job],
    writer: ShardWriter,
    *,
    concurrency: int = 64,
    show_progress: bool = True,
    report: Report | None = None,
) -> RunStats:
    """Run `jobs` not yet in the shards; a rich bar shows progress when `show_progress`, and `report`
    gets a progress line every half minute (for logs)."""
    done_ids = finished_ids(writer.folder)
    todo = [j for j in jobs if j.trace_id not in done_ids]
    stats = RunStats(skipped=len(done_ids))
    queue: asyncio.Queue[Job] = asyncio.Queue()
    for job in todo:
        queue.put_nowait(job)
    start = time.perf_counter()
    progress = Progress(
        TextColumn("synthesize"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[rates]}"),
        disable=not show_progress,
    )
    task = progress.add_task("synthesize", total=len(todo), rates="")

    def line() -> str:
        tokens_per_s = stats.tokens / (time.perf_counter() - start)
        return (
            f"synthesized {stats.done}/{len(todo)} samples ({stats.skipped} already in shards), "
            f"{stats.failed} failed, {tokens_per_s:,.0f} tok/s, teacher share {stats.teacher_share:.0%}"
        )

    async def worker() -> None:
        while not queue.empty():
            job = queue.get_nowait()
            trace = await synthesizer.run(job.trace_id, job.question_id, job.question, job.method)
            trace = replace(trace, recipe=job.recipe)
            writer.add(trace)
            stats.done += 1
            stats.failed += trace.status != "ok"
            stats.tokens += trace.n_tokens
            stats.teacher_tokens += trace.n_tokens_teacher
            stats.by_method[job.method] = stats.by_method.get(job.method, 0) + 1
            stats.seconds = time.perf_counter() - start
            progress.update(
                task,
                advance=1,
                rates=f"{stats.done / stats.seconds:.2f} samples/s  {stats.tokens_per_s:,.0f} tok/s  "
                f"teacher {stats.teacher_share:.0%}  failed {stats.failed}",
            )

    with progress, reporting(report, line):
        try:
            async with asyncio.TaskGroup() as group:  # one failure cancels the rest
                for _ in range(min(concurrency, len(todo))):
                    group.create_task(worker())
        finally:
            writer.flush()  # finished samples survive an interrupt or a crash elsewhere
    stats.seconds = time.perf_counter() - start
    return stats
