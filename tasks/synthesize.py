"""Synthesis tasks: the synthesize stage's steps (plan, one part of the jobs against shared servers,
load), so the flow can run the parts side by side, on threads or on Ray workers; the loaded traces are
summarized as a table."""

from typing import Any

from prefect import task
from prefect.logging import get_run_logger

from tasks.artifacts import table
from tasks.runs import warehouse_turn
from tessy.config import PipelineConfig
from tessy.runtime import Endpoints
from tessy.stages import synthesize as stage
from warehouse.predictors import PredictorRef


@task(task_run_name="plan jobs (limit {limit})")
def plan(
    cfg: PipelineConfig, run_id: str, methods: list[str], limit: int | None
) -> tuple[list[str], dict[str, PredictorRef], int]:
    """The plan's parts written to storage (their URLs), the predictors where every part reaches
    them, and how many jobs there are: only URLs travel to the parts, never the job lists."""
    work = stage.plan(cfg, methods, limit)
    parts = stage.write_parts(cfg, run_id, work)
    get_run_logger().info("%d jobs planned (%s) in %d parts", len(work.jobs), ", ".join(methods), len(parts))
    return parts, stage.shared_predictors(cfg, work.predictors), len(work.jobs)


@task(task_run_name="synthesize part {index}")
def synthesize_part(
    cfg: PipelineConfig,
    endpoints: Endpoints,
    predictors: dict[str, PredictorRef],
    part: str,
    index: int,
) -> dict[str, float]:
    logger = get_run_logger()
    stats = stage.synthesize_part(
        cfg, endpoints, predictors, part, report=lambda line: logger.info("part %d: %s", index, line)
    )
    logger.info(
        "part %d: %d samples (%d failed), %.0f tokens/s, teacher share %.2f",
        index,
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
