"""Filter task: the filter stage, with its label counts as a table artifact."""

from typing import Any

from prefect import task
from prefect.logging import get_run_logger

from tasks.artifacts import table
from tessy.config import PipelineConfig
from tessy.runtime import Endpoints
from tessy.stages import filter as stage


@task(task_run_name="filter questions ({cfg.filter.judge} judge)")
def filter_questions(cfg: PipelineConfig, endpoints: Endpoints, run_id: str) -> dict[str, Any]:
    stats = stage.run(cfg, run_id, endpoints=endpoints)
    get_run_logger().info("filter %s: %s", cfg.filter.judge, stats)
    table(
        "filter-summary",
        [{"judge": cfg.filter.judge, **stats}],
        f"contest labels after filter run {run_id}; domain_agreement: labels "
        "that match the source's own domain (code = contest), over the questions that have one",
    )
    return stats
