"""Ingest tasks: stream one configured source into the warehouse."""

from pathlib import Path

from prefect import task
from prefect.logging import get_run_logger

from tessy.config import IngestConfig, SourceConfig
from warehouse.db import open_warehouse
from warehouse.ingest import ingest_path


@task(task_run_name="ingest {source.path}")
def ingest_source(db: Path, source: SourceConfig, options: IngestConfig, run_id: str) -> dict[str, int]:
    with open_warehouse(db) as wh:
        stats = ingest_path(
            wh,
            source.path,
            run_id,
            fmt=source.format,
            question_field=source.question_field,
            max_chars=options.max_chars,
            batch_rows=options.batch_rows,
        )
    get_run_logger().info("%s: %s", source.path, stats.as_dict())
    return stats.as_dict()
