"""Ingest: every source of a pipeline config into the warehouse's `questions` / `quarantine`."""

from pathlib import Path
from typing import Any

import typer
from prefect import flow
from prefect.artifacts import create_table_artifact

from tasks.ingest import ingest_source
from tasks.runs import finish_run, start_run
from tessy.config import load_config


@flow(name="ingest", log_prints=True)
def ingest_flow(config_path: Path = Path("configs/demo.yaml")) -> dict[str, Any]:
    cfg = load_config(config_path)
    run_id = start_run(cfg.warehouse, "ingest", cfg.public_dict())
    per_source = []
    try:
        for source in cfg.sources:
            per_source.append(
                {"source": source.path, **ingest_source(cfg.warehouse, source, cfg.ingest, run_id)}
            )
    except BaseException as exc:
        finish_run(cfg.warehouse, run_id, "failed", {"error": repr(exc)})
        raise
    totals = {
        key: sum(row[key] for row in per_source) for key in ("read", "ingested", "duplicates", "quarantined")
    }
    finish_run(cfg.warehouse, run_id, "completed", totals)
    create_table_artifact(per_source, key="ingest-sources", description=f"ingest run {run_id}")
    print(f"ingest {run_id}: {totals}")
    return {"run_id": run_id, **totals}


def main(config: Path = Path("configs/demo.yaml")) -> None:
    ingest_flow(config)


if __name__ == "__main__":
    typer.run(main)
