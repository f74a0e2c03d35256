"""Ingest: every source of a pipeline config into the warehouse's `questions` / `quarantine`."""

from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow

from tasks.artifacts import table
from tasks.ingest import ingest_task
from tasks.runs import recorded_run, run_name
from tessy.config import load_config
from tessy.preflight import ensure_ready

COUNTS = ("read", "ingested", "duplicates", "quarantined")


@flow(name="ingest", flow_run_name=run_name, log_prints=True)
def ingest_flow(config_path: Path = Path("configs/demo.yaml")) -> dict[str, Any]:
    """Read every source of the config (local files or hf://) into the warehouse: new questions into
    `questions`, rows that cannot be used into `quarantine` with the reason.

    Args:
        config_path: pipeline YAML, relative to the repository root.
    """
    cfg = load_config(config_path)
    ensure_ready(cfg, sources=True, config_path=config_path)
    with recorded_run(cfg.warehouse, "ingest", cfg.public_dict()) as run:
        per_source = [
            {"source": s.path, **ingest_task(s)(cfg.warehouse, s, cfg.ingest, run.run_id)}
            for s in cfg.sources
        ]
        run.stats = {key: sum(row[key] for row in per_source) for key in COUNTS}
    table("ingest-sources", per_source, f"ingest run {run.run_id}: rows per source")
    print(f"ingest {run.run_id}: {run.stats}")
    return {"run_id": run.run_id, **run.stats}


def main(config: Annotated[Path, typer.Argument(help="pipeline YAML")] = Path("configs/demo.yaml")) -> None:
    ingest_flow(config)


if __name__ == "__main__":
    typer.run(main)
