"""Filter: keep programming-contest questions (heuristic or LLM judge) as `question_labels`."""

from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow

from tasks.filter import filter_questions
from tasks.runs import recorded_run, run_name
from tasks.servers import served
from tessy.config import load_config
from tessy.preflight import ensure_ready
from tessy.runtime import judge_roles


@flow(name="filter", flow_run_name=run_name, log_prints=True)
def filter_flow(
    config_path: Path = Path("configs/demo.yaml"), endpoints: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """Label the questions no judge of this version has decided yet as programming contest or not
    (`question_labels`), with the config's heuristic or LLM judge.

    Args:
        config_path: pipeline YAML, relative to the repository root.
        endpoints: servers a parent flow already runs (role -> URLs); otherwise this flow starts
            the judge's server when the config has tessy start it.
    """
    cfg = load_config(config_path)
    ensure_ready(cfg, roles=judge_roles(cfg) if endpoints is None else (), config_path=config_path)
    with recorded_run(cfg.warehouse, "filter", cfg.public_dict()) as run:
        with served(cfg, judge_roles(cfg), endpoints) as running:
            run.stats = filter_questions(cfg, running, run.run_id)
    print(f"filter {run.run_id}: {run.stats}")
    return {"run_id": run.run_id, **run.stats}


def main(config: Annotated[Path, typer.Argument(help="pipeline YAML")] = Path("configs/demo.yaml")) -> None:
    filter_flow(config)


if __name__ == "__main__":
    typer.run(main)
