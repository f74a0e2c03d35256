"""Synthesis tasks: the synthesize stage's steps (plan, one part of the jobs against shared servers,
load), so the flow can run the parts side by side; the loaded traces are summarized as a table."""

from typing import Any

from prefect import task
from prefect.logging import get_run_logger

from tasks.artifacts import table
from tasks.runs import warehouse_turn
from tessy.config import PipelineConfig
from tessy.runtime import Endpoints
from tessy.stages import synthesize as stage
from tessy.synthesis.scheduler import Job
from warehouse.predictors import PredictorRef


@task(task_run_name="plan jobs (limit {limit})")
def plan(cfg: PipelineConfig, methods: list[str], limit: int | None) -> stage.Plan:
    work = stage.plan(cfg, methods, limit)
    get_run_logger().info("%d jobs planned (%s)", len(work.jobs), ", ".join(methods))
    return work


@task(task_run_name="synthesize part {part}")
def synthesize_part(
    cfg: PipelineConfig,
    endpoints: Endpoints,
    predictors: dict[str, PredictorRef],
    jobs: list[Job],
    part: int,
) -> dict[str, float]:
    logger = get_run_logger()
    stats = stage.synthesize_part(
        cfg, endpoints, predictors, jobs, report=lambda line: logger.info("part %d: %s", part, line)
    )
    logger.info(
        "part %d: %d samples (%d failed), %.0f tokens/s, teacher share %.2f",
        part,
        stats.done,
        stats.failed,
        stats.tokens_per_s,
        stats.teacher_share,
    )
    return {"done": stats.done, "failed": stats.failed, "tokens": stats.tokens, "seconds": stats.seconds}


@task(task_run_name="load shards into the warehouse")
def load_traces(cfg: PipelineConfig, run_id: str, seconds: float) -> dict[str, int]:
    """Load the shards, then publish a per-method table of what this run made. Methods run side by
    side, so a method's tok/s is its share of the run's throughput over the run's wall time."""
    with warehouse_turn():
        loaded = stage.load(cfg, run_id)
    rows = stage.summary(cfg, run_id)
    table("synthesize-summary", [_row(r, seconds) for r in rows], f"traces made by synthesis run {run_id}")
    return loaded


def _row(row: dict[str, Any], seconds: float) -> dict[str, Any]:
    return {**row, "tok_per_s": row["tokens"] / seconds if seconds else None}
