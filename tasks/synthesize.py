"""Synthesis tasks: plan the jobs, run one part of them against shared servers, load the shards."""

from pathlib import Path

from prefect import task
from prefect.logging import get_run_logger

from tessy.config import PipelineConfig
from tessy.runtime import PredictorRef, synthesize_jobs
from tessy.synthesis.scheduler import Job
from warehouse.db import open_warehouse
from warehouse.predictors import predictors_for
from warehouse.traces import load_shards, plan_jobs


@task
def plan(
    cfg: PipelineConfig, methods: list[str], limit: int | None
) -> tuple[list[Job], dict[str, PredictorRef]]:
    with open_warehouse(cfg.warehouse) as wh:
        predictors = predictors_for(wh, methods)
        return plan_jobs(wh, cfg, methods, predictors, limit), predictors


@task(task_run_name="synthesize part {part}")
def synthesize_part(
    cfg: PipelineConfig,
    endpoints: dict[str, list[str]],
    predictors: dict[str, PredictorRef],
    jobs: list[Job],
    shards: Path,
    part: int,
) -> dict[str, float]:
    stats = synthesize_jobs(cfg, endpoints, predictors, jobs, shards)
    get_run_logger().info(
        "part %d: %d samples (%d failed), %.0f tokens/s, teacher share %.2f",
        part,
        stats.done,
        stats.failed,
        stats.tokens_per_s,
        stats.teacher_share,
    )
    return {"done": stats.done, "failed": stats.failed, "tokens": stats.tokens, "seconds": stats.seconds}


@task
def load_traces(db: Path, shards: Path, run_id: str) -> dict[str, int]:
    with open_warehouse(db) as wh:
        return load_shards(wh, shards, run_id)
