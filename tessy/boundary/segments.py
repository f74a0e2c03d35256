"""Gather thinking texts from one model family through an Engine and cut them into training windows."""

import asyncio
import dataclasses
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tessy.boundary.windows import Window, cut_windows, dedup

if TYPE_CHECKING:
    from tessy.engines import Engine, Sampling


@dataclass
class SegmentSample:
    windows: list[Window]
    n_responses: int  # responses that gave at least one window
    failures: Counter[str] = field(default_factory=Counter)  # reason -> count, one per prompt that gave none


async def sample_segments(
    engine: "Engine",
    prompts: Sequence[str],
    *,
    params: "Sampling",
    split_thinking: Callable[[str], str],
    n_responses: int | None = None,
    concurrency: int = 16,
    words: int = 60,
    per_response: int = 100,
    seed: int = 0,
) -> SegmentSample:
    """Ask `engine` to answer `n_responses` prompts sampled from `prompts` (already rendered in the
    model family's chat format, thinking on), keep the thinking part of each reply and cut it into
    deduplicated windows. Request i uses seed `seed + i`, so reruns ask the same questions the same way.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be positive, got {concurrency}")
    rng = random.Random(seed)
    n = len(prompts) if n_responses is None else min(n_responses, len(prompts))
    chosen = rng.sample(list(prompts), n)
    gate = asyncio.Semaphore(concurrency)
    failures: Counter[str] = Counter()

    async def one(i: int, prompt: str) -> list[Window]:
        async with gate:
            try:
                completion = await engine.complete(prompt, dataclasses.replace(params, seed=seed + i))
            except Exception as e:  # any engine failure is counted by type, never fatal for the batch
                failures[f"engine_error:{type(e).__name__}"] += 1
                return []
        try:
            thinking = split_thinking(completion.text)
        except ValueError:
            failures["no_thinking"] += 1
            return []
        if not thinking.strip():
            failures["empty_thinking"] += 1
            return []
        return cut_windows(thinking, words=words, per_response=per_response, seed=seed)

    per_prompt = await asyncio.gather(*(one(i, p) for i, p in enumerate(chosen)))
    windows = dedup(w for ws in per_prompt for w in ws)
    return SegmentSample(windows, sum(1 for ws in per_prompt if ws), failures)
