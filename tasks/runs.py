"""Run bookkeeping for flows: the `runs` row carries the Prefect flow run that made it."""

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from prefect.runtime import flow_run

from warehouse.db import Run
from warehouse.db import recorded_run as _recorded_run


def recorded_run(db: Path, kind: str, config: dict[str, Any]) -> AbstractContextManager[Run]:
    return _recorded_run(db, kind, config, flow_run_id=flow_run.id)
