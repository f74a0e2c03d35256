"""Pick a contest judge by name: the heuristic, or an LLM through an Engine. A judge maps question
texts to decisions; its version names everything that can change a decision."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tessy.config import PipelineConfig
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


def llm_judge(engine: Engine, family: Family, version: str, config: JudgeConfig | None = None) -> Judge:
    """A judge asking a model through `engine`; `version` is `filter_identity`'s."""
    config = config or JudgeConfig()

    def decide(texts: list[str]) -> list[Decision]:
        return asyncio.run(judge_questions(engine, family, texts, version=version, config=config))

    return Judge("llm", version, decide)


def filter_identity(cfg: PipelineConfig) -> tuple[str, str]:
    """(filter name, version) of the config's contest judge, from the config alone: the labels it
    writes, and so the questions it selects for synthesis, are found by this pair."""
    if cfg.filter.judge == "heuristic":
        return "heuristic", HEURISTIC_VERSION
    model = cfg.model(cfg.filter.model)
    return "llm", judge_version(model.family, model.name_on_server)
