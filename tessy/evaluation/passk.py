"""pass@1 of a model on a benchmark: k sampled responses per problem (thinking, then answer, in one
request through any Engine), the answer's last code block run against the problem's tests in the
sandbox, and a 95% interval over problems."""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from tessy.engines.base import Engine, Sampling
from tessy.evaluation.benchmark import BenchProblem
from tessy.quality.code_exec import extract_code, run_tests
from tessy.templates import Family


@dataclass(frozen=True)
class Score:
    pass_at_1: float
    ci95: float  # half-width of the normal 95% interval over problems
    n: int  # problems
    k: int  # samples per problem
    per_problem: dict[str, float] = field(default_factory=dict)  # problem id -> share of k passed
    per_group: dict[str, float] = field(default_factory=dict)
    closed: float = 0.0  # share of responses whose thinking ended before the token cap


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and 95% half-width (normal, sample variance) of per-problem pass rates."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, 1.96 * math.sqrt(var / n)


def score(problems: list[BenchProblem], passed: dict[str, list[bool]], closed: float = 0.0) -> Score:
    """The Score of per-problem sample outcomes (problem id -> one bool per sample)."""
    per_problem = {p.id: sum(passed[p.id]) / len(passed[p.id]) for p in problems}
    mean, ci95 = interval(list(per_problem.values()))
    groups: dict[str, list[float]] = defaultdict(list)
    for p in problems:
        groups[p.group].append(per_problem[p.id])
    per_group = {g: sum(v) / len(v) for g, v in sorted(groups.items()) if g}
    k = len(passed[problems[0].id])
    return Score(mean, ci95, len(problems), k, per_problem, per_group, closed)


async def pass_at_1(
    engine: Engine,
    family: Family,
    problems: list[BenchProblem],
    *,
    k: int,
    sampling: Sampling,
    seed: int = 0,
    concurrency: int = 64,
    timeout_s: float = 5.0,
    allow_unsafe: bool = False,
) -> Score:
    """Sample `k` responses per problem from `engine` (`family`'s thinking prompt; the response runs
    through the end of thinking into the answer) and run each answer's code against the tests.
    A response whose thinking never ends has no answer and fails."""
    gate = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    results: dict[str, list[bool]] = {p.id: [] for p in problems}
    closed = 0

    with ThreadPoolExecutor(max_workers=4) as pool:

        async def one(i: int, p: BenchProblem, j: int) -> None:
            nonlocal closed
            async with gate:
                completion = await engine.complete(
                    family.thinking_prompt(p.question), replace(sampling, seed=seed * 1_000_003 + i * k + j)
                )
            _, answer = family.split_thinking(completion.text)
            closed += answer is not None
            code = extract_code(answer) if answer is not None else None
            result = await loop.run_in_executor(
                pool,
                lambda: run_tests(
                    code, p.tests.inputs, p.tests.outputs, timeout_s=timeout_s, allow_unsafe=allow_unsafe
                ),
            )
            if result.status == "not_run":
                raise RuntimeError(f"generated code cannot run: {result.detail}")
            results[p.id].append(result.passed)

        await asyncio.gather(*(one(i, p, j) for i, p in enumerate(problems) for j in range(k)))
    return score(problems, results, closed / (len(problems) * k))
