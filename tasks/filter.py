"""Filter task: label pending questions as contest / not contest with the configured judge."""

from prefect import task
from prefect.logging import get_run_logger

from tessy.config import PipelineConfig
from tessy.runtime import judge_from_config
from warehouse.labels import run_filter


@task
def filter_questions(cfg: PipelineConfig, endpoints: dict[str, list[str]], run_id: str) -> dict[str, int]:
    stats = run_filter(cfg.warehouse, run_id, judge_from_config(cfg, endpoints))
    get_run_logger().info("filter %s: %s", cfg.filter.judge, stats)
    return stats
