"""A trace's identity: what it was made from. The same question, method, models, synthesis settings
(and predictors, for TESSY) give the same id, so a rerun finds the trace made already."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tessy.config import PipelineConfig
from tessy.hashing import canonical_json, config_hash

_SLOT = "<question_id>"


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


def trace_id_template(cfg: PipelineConfig, method: str, predictor_ids: Iterable[str]) -> tuple[str, str]:
    """(prefix, suffix) with `trace_id` = sha256(prefix + question_id + suffix) for any question id that
    JSON writes as it is (the warehouse's are hex digests), so the warehouse computes the ids of all its
    questions itself (DuckDB's sha256) instead of this process hashing each one."""
    prefix, suffix = canonical_json(_identity(cfg, _SLOT, method, predictor_ids)).split(f'"{_SLOT}"')
    return prefix + '"', '"' + suffix
