"""Filter: label the questions no judge of this version has decided yet as contest or not."""

from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow

from tasks.filter import filter_questions
from tasks.runs import run_name, stage_run
from tasks.servers import served
from tessy.config import DEFAULT_CONFIG, PipelineConfig
from tessy.runtime import Endpoints
from tessy.stages.filter import judge_roles


@flow(name="filter", flow_run_name=run_name, log_prints=True)
def filter_flow(
    config_path: Path = DEFAULT_CONFIG,
    endpoints: Endpoints | None = None,
    cfg: PipelineConfig | None = None,
) -> dict[str, Any]:
    """Label the questions no judge of this version has decided yet as programming contest or not
    (`question_labels`), with the config's heuristic or LLM judge.

    Args:
        config_path: pipeline YAML, relative to the repository root.
        endpoints: servers a parent flow already runs (role -> URLs); otherwise this flow starts
            the judge's server when the config has tessy start it.
        cfg: the loaded config, when a parent flow passes its own down.
    """
    with stage_run("filter", config_path, cfg, roles=judge_roles if endpoints is None else ()) as (cfg, run):
        with served(cfg, judge_roles(cfg), endpoints) as running:
            run.stats = filter_questions(cfg, running, run.run_id)
    return {"run_id": run.run_id, **run.stats}


def main(config: Annotated[Path, typer.Argument(help="pipeline YAML")] = DEFAULT_CONFIG) -> None:
    filter_flow(config)


if __name__ == "__main__":
    typer.run(main)
