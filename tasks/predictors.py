"""Predictors task: the predictors stage, each role's outcome logged and shown as a table."""

from typing import Any

from prefect import task
from prefect.logging import get_run_logger

from tasks.artifacts import table
from tessy.config import PipelineConfig
from tessy.runtime import Endpoints
from tessy.stages import predictors as stage


@task(task_run_name="train predictors when stale (force={force})")
def train_predictors(
    cfg: PipelineConfig, run_id: str, force: bool = False, endpoints: Endpoints | None = None
) -> dict[str, dict[str, Any]]:
    result = stage.run(cfg, run_id, force=force, endpoints=endpoints)
    for role, info in result.items():
        verb = "trained" if info["trained"] else "up to date"
        get_run_logger().info(
            "%s predictor %s %s: %s", role, info["predictor_id"][:12], verb, info["metrics"]
        )
    table(
        "predictors-summary", [_row(role, info) for role, info in result.items()], f"predictors, run {run_id}"
    )
    return result


def _row(role: str, info: dict[str, Any]) -> dict[str, Any]:
    metrics = info["metrics"]
    truth = metrics.get("ground_truth", {})
    return {
        "role": role,
        "action": "retrained" if info["trained"] else "reused",
        "predictor": info["predictor_id"][:12],
        "train_rows": metrics.get("annotated"),
        "val_accuracy": metrics.get("validation", {}).get("accuracy"),
        "style_f1 (truth)": truth.get("style_f1"),
        "boundary_f1 (truth)": truth.get("boundary_f1"),
    }
