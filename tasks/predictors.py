"""Predictors task: (re)train the boundary predictors when their models, base or settings changed."""

from typing import Any

from prefect import task
from prefect.logging import get_run_logger

from tessy.config import PipelineConfig
from warehouse.predictors import ensure_predictors


@task
def train_predictors(
    cfg: PipelineConfig, run_id: str, force: bool = False, endpoints: dict[str, list[str]] | None = None
) -> dict[str, dict[str, Any]]:
    result = ensure_predictors(cfg, run_id, force=force, endpoints=endpoints)
    for role, info in result.items():
        verb = "trained" if info["trained"] else "up to date"
        get_run_logger().info(
            "%s predictor %s %s: %s", role, info["predictor_id"][:12], verb, info["metrics"]
        )
    return result
