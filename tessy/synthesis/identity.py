"""A trace's identity: what it was made from. The same question, method, models, synthesis settings
(and predictors, for TESSY) give the same id, so a rerun finds the trace made already. Everything but
the question is the trace's recipe: the warehouse plans a night by (question, recipe) pairs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tessy.config import PipelineConfig
from tessy.hashing import canonical_json, config_hash

_SLOT = "<question_id>"


@dataclass(frozen=True)
class Recipe:
    """How one method makes its traces under a config. `trace_id` = sha256(prefix + question_id +
    suffix) for any question id that JSON writes as it is (the warehouse's are hex digests), so the
    warehouse computes trace ids itself (DuckDB's sha256) instead of this process hashing each one."""

    method: str
    recipe_id: str
    prefix: str
    suffix: str


def _identity(
    cfg: PipelineConfig, question_id: str, method: str, predictor_ids: Iterable[str]
) -> dict[str, Any]:
    return {
        "question_id": question_id,
        "method": method,
        "student": cfg.model("student").path,
        "teacher": cfg.model("teacher").path,
        "synthesis": cfg.synthesis.identity(),
        "predictors": sorted(predictor_ids) if method == "tessy" else [],
    }


def trace_id(cfg: PipelineConfig, question_id: str, method: str, predictor_ids: Iterable[str]) -> str:
    return config_hash(_identity(cfg, question_id, method, predictor_ids))


def recipe(cfg: PipelineConfig, method: str, predictor_ids: Iterable[str]) -> Recipe:
    identity = _identity(cfg, _SLOT, method, predictor_ids)
    prefix, suffix = canonical_json(identity).split(f'"{_SLOT}"')
    return Recipe(method, config_hash(identity), prefix + '"', '"' + suffix)
