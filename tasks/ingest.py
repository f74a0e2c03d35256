"""Ingest task: one configured source into the warehouse. Hub sources are read over the network and
retried with backoff; a retry in the same run adds no row twice (questions are keyed by content,
quarantine rows by source and locator)."""

from pathlib import Path

from prefect import Task, task
from prefect.logging import get_run_logger
from prefect.tasks import exponential_backoff

from tasks.runs import warehouse_turn
from tessy.config import IngestConfig, SourceConfig
from tessy.sources.hub import HUB_PREFIX
from tessy.stages.ingest import ingest_source as ingest


@task(task_run_name="ingest {source.path}", retry_delay_seconds=exponential_backoff(backoff_factor=10))
def ingest_source(db: Path, source: SourceConfig, options: IngestConfig, run_id: str) -> dict[str, int]:
    with warehouse_turn():
        stats = ingest(db, source, options, run_id)
    get_run_logger().info("%s: %s", source.path, stats.as_dict())
    return stats.as_dict()


def ingest_task(source: SourceConfig) -> Task:
    """The ingest task for `source`: retried when it reads the Hub; a local file that failed would
    fail the same way again."""
    return ingest_source.with_options(retries=3 if source.path.startswith(HUB_PREFIX) else 0)
