"""Filter task: label pending questions as contest / not contest with the configured judge."""

from typing import Any

from prefect import task
from prefect.logging import get_run_logger

from tasks.artifacts import table
from tessy.config import PipelineConfig
from tessy.runtime import judge_from_config
from warehouse.labels import run_filter


@task(task_run_name="filter questions ({cfg.filter.judge} judge)")
def filter_questions(cfg: PipelineConfig, endpoints: dict[str, list[str]], run_id: str) -> dict[str, Any]:
    stats = run_filter(cfg.warehouse, run_id, judge_from_config(cfg, endpoints))
    get_run_logger().info("filter %s: %s", cfg.filter.judge, stats)
    row = {"judge": cfg.filter.judge, **stats}
    table(
        "filter-summary",
        [row],
        f"contest labels after filter run {run_id}; domain_agreement: labels "
        "that match the source's own domain (code = contest), over the questions that have one",
    )
    return stats
