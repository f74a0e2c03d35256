"""Predictors: train the teacher's and the student's boundary predictors when stale."""

from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow

from tasks.predictors import train_predictors
from tasks.runs import run_name, stage_run
from tessy.config import DEFAULT_CONFIG, PipelineConfig
from tessy.runtime import ROLES, Endpoints


@flow(name="predictors", flow_run_name=run_name, log_prints=True)
def predictors_flow(
    config_path: Path = DEFAULT_CONFIG,
    force: bool = False,
    endpoints: Endpoints | None = None,
    cfg: PipelineConfig | None = None,
) -> dict[str, Any]:
    """Train each role's boundary predictor unless one with the same models, base and settings is
    registered (`predictors`); a retrain samples both models' own responses, so it needs their servers.

    Args:
        config_path: pipeline YAML, relative to the repository root.
        force: retrain even when the registered predictors are up to date.
        endpoints: servers a parent flow already runs (role -> URLs); otherwise servers are started
            when a predictor must be trained.
        cfg: the loaded config, when a parent flow passes its own down.
    """
    with stage_run("predictors", config_path, cfg, roles=ROLES if endpoints is None else ()) as (cfg, run):
        result = train_predictors(cfg, run.run_id, force, endpoints)
        run.stats = {role: {k: v for k, v in info.items() if k != "path"} for role, info in result.items()}
    return {"run_id": run.run_id, **result}


def main(
    config: Annotated[Path, typer.Argument(help="pipeline YAML")] = DEFAULT_CONFIG,
    force: bool = False,
) -> None:
    predictors_flow(config, force)


if __name__ == "__main__":
    typer.run(main)
