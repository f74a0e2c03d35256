"""Evaluate task: the evaluate stage, its per-method figures shown in the UI as a table."""

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from tasks.artifacts import table
from tessy.config import PipelineConfig
from tessy.stages import evaluate as stage


@task(task_run_name="evaluate {cfg.name} traces by fine-tuning", cache_policy=NO_CACHE)
def evaluate_traces(cfg: PipelineConfig, run_id: str, release: str | None = None) -> stage.EvaluateOutcome:
    outcome = stage.run(cfg, run_id, report=get_run_logger().info, release=release)
    table("evaluation", outcome.table(), f"held-out pass@1 of the fine-tuned student, {run_id}")
    return outcome
