"""The frame every stage flow shares: its config (loaded and checked once), its `runs` row (which
carries the Prefect flow run that made it), its name after flow, config and day
(`nightly-demo-2026-11-29`), and the warehouse writers' turn."""

import contextlib
import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.runtime import flow_run

from tessy.config import PipelineConfig, load_config
from tessy.preflight import ensure_ready
from warehouse.db import Run, recorded_run

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


@contextmanager
def stage_run(
    kind: str,
    config_path: Path,
    cfg: PipelineConfig | None = None,
    *,
    roles: tuple[str, ...] | Callable[[PipelineConfig], tuple[str, ...]] = (),
    sources: bool = False,
    runner: bool = False,
) -> Iterator[tuple[PipelineConfig, Run]]:
    """The config and the stage's `runs` row for the block. The config is `cfg` when a parent flow
    passes its own down (it checked it), else loaded from `config_path` and checked here: storage,
    the sources when `sources`, the task runner's cluster when `runner`, the models of `roles` (or of
    `roles(cfg)`): ConfigNotReady before anything is written.
    The row completes with the block's stats, or fails with its error; a line then sums it up."""
    if cfg is None:
        cfg = load_config(config_path)
        needed = roles(cfg) if callable(roles) else roles
        ensure_ready(cfg, roles=needed, sources=sources, runner=runner, config_path=config_path)
    with recorded_run(cfg.warehouse, kind, cfg.public_dict(), flow_run_id=flow_run.id) as run:
        yield cfg, run
    print(f"{kind} {run.run_id}: {run.stats or 'nothing new'}")


def run_name() -> str:
    """`flow_run_name` for every flow: flow, config file stem and UTC date."""
    config = Path(str(flow_run.parameters.get("config_path", "config"))).stem
    return f"{flow_run.flow_name}-{config}-{datetime.now(UTC):%Y-%m-%d}"
