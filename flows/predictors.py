"""Predictors: train the teacher's and the student's boundary predictors when stale."""

from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow

from tasks.predictors import train_predictors
from tasks.runs import recorded_run
from tessy.config import load_config


@flow(name="predictors", log_prints=True)
def predictors_flow(
    config_path: Path = Path("configs/demo.yaml"),
    force: bool = False,
    endpoints: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """`endpoints`: servers a parent flow already runs; otherwise this flow starts what it needs."""
    cfg = load_config(config_path)
    with recorded_run(cfg.warehouse, "predictors", cfg.public_dict()) as run:
        result = train_predictors(cfg, run.run_id, force, endpoints)
        run.stats = {role: {k: v for k, v in info.items() if k != "path"} for role, info in result.items()}
    print(f"predictors {run.run_id}: {run.stats}")
    return {"run_id": run.run_id, **result}


def main(
    config: Annotated[Path, typer.Argument(help="pipeline YAML")] = Path("configs/demo.yaml"),
    force: bool = False,
) -> None:
    predictors_flow(config, force)


if __name__ == "__main__":
    typer.run(main)
