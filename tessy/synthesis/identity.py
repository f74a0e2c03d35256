"""A trace's identity: what it was made from. The same question, method, models, synthesis settings
(and predictors, for TESSY) give the same id, so a rerun finds the trace made already."""

from __future__ import annotations

from collections.abc import Iterable

from tessy.config import PipelineConfig
from tessy.hashing import config_hash


def trace_id(cfg: PipelineConfig, question_id: str, method: str, predictor_ids: Iterable[str]) -> str:
    return config_hash(
        {
            "question_id": question_id,
            "method": method,
            "student": cfg.model("student").path,
            "teacher": cfg.model("teacher").path,
            "synthesis": cfg.synthesis.identity(),
            "predictors": sorted(predictor_ids) if method == "tessy" else [],
        }
    )
