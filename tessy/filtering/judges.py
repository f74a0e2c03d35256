"""Pick a contest judge by name: the heuristic, or an LLM through an Engine. A judge maps question
texts to decisions; its version names everything that can change a decision."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tessy.engines.base import Engine
from tessy.filtering.heuristic import HEURISTIC_VERSION, Decision, heuristic_decision
from tessy.filtering.llm import JudgeConfig, judge_questions, judge_version
from tessy.templates import Family


@dataclass(frozen=True)
class Judge:
    name: str  # "heuristic" | "llm"
    version: str
    decide: Callable[[list[str]], Sequence[Decision]]


def heuristic_judge() -> Judge:
    return Judge("heuristic", HEURISTIC_VERSION, lambda texts: [heuristic_decision(t) for t in texts])


def llm_judge(engine: Engine, family: Family, model_name: str, config: JudgeConfig | None = None) -> Judge:
    config = config or JudgeConfig()

    def decide(texts: list[str]) -> list[Decision]:
        return asyncio.run(judge_questions(engine, family, texts, judge=model_name, config=config))

    return Judge("llm", judge_version(family, model_name), decide)
