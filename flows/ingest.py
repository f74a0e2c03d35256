"""Ingest: every source of a pipeline config into the warehouse's `questions` / `quarantine`."""

from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow

from tasks.artifacts import table
from tasks.ingest import ingest_task
from tasks.runs import run_name, stage_run
from tessy.config import DEFAULT_CONFIG, PipelineConfig

COUNTS = ("read", "ingested", "duplicates", "quarantined")


@flow(name="ingest", flow_run_name=run_name, log_prints=True)
def ingest_flow(config_path: Path = DEFAULT_CONFIG, cfg: PipelineConfig | None = None) -> dict[str, Any]:
    """Read every source of the config (local files or hf://) into the warehouse: new questions into
    `questions`, rows that cannot be used into `quarantine` with the reason.

    Args:
        config_path: pipeline YAML, relative to the repository root.
        cfg: the loaded config, when a parent flow passes its own down.
    """
    with stage_run("ingest", config_path, cfg, sources=True) as (cfg, run):
        per_source = [
            {"source": s.path, **ingest_task(s)(cfg.warehouse, s, cfg.ingest, run.run_id)}
            for s in cfg.sources
        ]
        run.stats = {key: sum(row[key] for row in per_source) for key in COUNTS}
    table("ingest-sources", per_source, f"ingest run {run.run_id}: rows per source")
    return {"run_id": run.run_id, **run.stats}


def main(config: Annotated[Path, typer.Argument(help="pipeline YAML")] = DEFAULT_CONFIG) -> None:
    ingest_flow(config)


if __name__ == "__main__":
    typer.run(main)
