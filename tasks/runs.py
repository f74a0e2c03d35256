"""Run bookkeeping for flows: the `runs` row carries the Prefect flow run that made it, and each flow
run is named after its flow, config and day (`nightly-demo-2026-11-29`), subflows too."""

from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run

from warehouse.db import Run
from warehouse.db import recorded_run as _recorded_run

# The global concurrency limit whose one slot the long warehouse writers (ingest, shard loading) take,
# so the UI shows which run waits for which. Created once per server (README); without it the file
# lock alone orders writers, each waiting its turn (warehouse/db.py).
WAREHOUSE_LIMIT = "tessy-warehouse"


def warehouse_turn() -> AbstractContextManager[None]:
    return concurrency(WAREHOUSE_LIMIT, occupy=1)


def recorded_run(db: Path, kind: str, config: dict[str, Any]) -> AbstractContextManager[Run]:
    return _recorded_run(db, kind, config, flow_run_id=flow_run.id)


def run_name() -> str:
    """`flow_run_name` for every flow: flow, config file stem and UTC date."""
    config = Path(str(flow_run.parameters.get("config_path", "config"))).stem
    return f"{flow_run.flow_name}-{config}-{datetime.now(UTC):%Y-%m-%d}"
