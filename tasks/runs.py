"""Run bookkeeping for flows: the `runs` row carries the Prefect flow run that made it, and each flow
run is named after its flow, config and day (`nightly-demo-2026-11-29`), subflows too."""

import contextlib
import functools
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.runtime import flow_run

from warehouse.db import Run
from warehouse.db import recorded_run as _recorded_run

# The global concurrency limit whose one slot the long warehouse writers (ingest, shard loading) take,
# so the UI shows which run waits for which. The file lock alone would order them too (warehouse/db.py),
# each waiting its turn, but invisibly.
WAREHOUSE_LIMIT = "tessy-warehouse"


def warehouse_turn() -> AbstractContextManager[None]:
    return concurrency(_warehouse_limit(), occupy=1)


@functools.cache
def _warehouse_limit() -> str:
    """The limit's name, the limit created with one slot on the server the first time a run needs it
    (a limit an operator set up already is left as it is)."""
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(WAREHOUSE_LIMIT)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):  # another run created it just now
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=WAREHOUSE_LIMIT, limit=1)
                )
    return WAREHOUSE_LIMIT


def recorded_run(db: Path, kind: str, config: dict[str, Any]) -> AbstractContextManager[Run]:
    return _recorded_run(db, kind, config, flow_run_id=flow_run.id)


def run_name() -> str:
    """`flow_run_name` for every flow: flow, config file stem and UTC date."""
    config = Path(str(flow_run.parameters.get("config_path", "config"))).stem
    return f"{flow_run.flow_name}-{config}-{datetime.now(UTC):%Y-%m-%d}"
