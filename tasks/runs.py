"""Run bookkeeping tasks: every stage records a `runs` row with its config and outcome."""

from pathlib import Path
from typing import Any

from prefect import task
from prefect.runtime import flow_run

from warehouse.db import open_warehouse


@task
def start_run(db: Path, kind: str, config: dict[str, Any]) -> str:
    with open_warehouse(db) as wh:
        return wh.start_run(kind, config, flow_run_id=flow_run.id)


@task
def finish_run(db: Path, run_id: str, status: str, stats: dict[str, Any]) -> None:
    with open_warehouse(db) as wh:
        wh.finish_run(run_id, status, stats)
