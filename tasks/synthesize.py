"""Synthesis tasks: plan the jobs, run one part of them against shared servers, load the shards and
summarize what the run made."""

from pathlib import Path
from typing import Any

from prefect import task
from prefect.logging import get_run_logger

from tasks.artifacts import table
from tasks.runs import warehouse_turn
from tessy.config import PipelineConfig
from tessy.runtime import PredictorRef, synthesize_jobs
from tessy.synthesis.scheduler import Job
from warehouse.db import open_warehouse
from warehouse.predictors import predictors_for
from warehouse.traces import load_shards, plan_jobs, run_summary


@task(task_run_name="plan jobs (limit {limit})")
def plan(
    cfg: PipelineConfig, methods: list[str], limit: int | None
) -> tuple[list[Job], dict[str, PredictorRef]]:
    with open_warehouse(cfg.warehouse) as wh:
        predictors = predictors_for(wh, methods)
        jobs = plan_jobs(wh, cfg, methods, predictors, limit)
    get_run_logger().info("%d jobs planned (%s)", len(jobs), ", ".join(methods))
    return jobs, predictors


@task(task_run_name="synthesize part {part}")
def synthesize_part(
    cfg: PipelineConfig,
    endpoints: dict[str, list[str]],
    predictors: dict[str, PredictorRef],
    jobs: list[Job],
    shards: Path,
    part: int,
) -> dict[str, float]:
    logger = get_run_logger()
    stats = synthesize_jobs(
        cfg, endpoints, predictors, jobs, shards, report=lambda line: logger.info("part %d: %s", part, line)
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
def load_traces(db: Path, shards: Path, run_id: str, seconds: float) -> dict[str, int]:
    """Load the shards, then publish a per-method table of what this run made. Methods run side by
    side, so a method's tok/s is its share of the run's throughput over the run's wall time."""
    with warehouse_turn(), open_warehouse(db) as wh:
        loaded = load_shards(wh, shards, run_id)
        rows = run_summary(wh, run_id)
    table("synthesize-summary", [_row(r, seconds) for r in rows], f"traces made by synthesis run {run_id}")
    return loaded


def _row(row: dict[str, Any], seconds: float) -> dict[str, Any]:
    return {**row, "tok_per_s": row["tokens"] / seconds if seconds else None}
