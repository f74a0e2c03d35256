"""Predictors: train the teacher's and the student's boundary predictors when stale."""

from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow

from tasks.predictors import train_predictors
from tasks.runs import recorded_run, run_name
from tessy.config import load_config
from tessy.preflight import ensure_ready
from tessy.runtime import ROLES


@flow(name="predictors", flow_run_name=run_name, log_prints=True)
def predictors_flow(
    config_path: Path = Path("configs/demo.yaml"),
    force: bool = False,
    endpoints: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Train each role's boundary predictor unless one with the same models, base and settings is
    registered (`predictors`); a retrain samples both models' own responses, so it needs their servers.

    Args:
        config_path: pipeline YAML, relative to the repository root.
        force: retrain even when the registered predictors are up to date.
        endpoints: servers a parent flow already runs (role -> URLs); otherwise servers are started
            when a predictor must be trained.
    """
    cfg = load_config(config_path)
    ensure_ready(cfg, roles=ROLES if endpoints is None else (), config_path=config_path)
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
