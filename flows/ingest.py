"""Ingest: every source of a pipeline config into the warehouse's `questions` / `quarantine`."""

from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow
from prefect.artifacts import create_table_artifact

from tasks.ingest import ingest_source
from tasks.runs import recorded_run
from tessy.config import load_config

COUNTS = ("read", "ingested", "duplicates", "quarantined")


@flow(name="ingest", log_prints=True)
def ingest_flow(config_path: Path = Path("configs/demo.yaml")) -> dict[str, Any]:
    cfg = load_config(config_path)
    with recorded_run(cfg.warehouse, "ingest", cfg.public_dict()) as run:
        per_source = [
            {"source": s.path, **ingest_source(cfg.warehouse, s, cfg.ingest, run.run_id)} for s in cfg.sources
        ]
        run.stats = {key: sum(row[key] for row in per_source) for key in COUNTS}
    create_table_artifact(per_source, key="ingest-sources", description=f"ingest run {run.run_id}")
    print(f"ingest {run.run_id}: {run.stats}")
    return {"run_id": run.run_id, **run.stats}


def main(config: Annotated[Path, typer.Argument(help="pipeline YAML")] = Path("configs/demo.yaml")) -> None:
    ingest_flow(config)


if __name__ == "__main__":
    typer.run(main)
