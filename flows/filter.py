"""Filter: keep programming-contest questions (heuristic or LLM judge) as `question_labels`."""

from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow

from tasks.filter import filter_questions
from tasks.runs import recorded_run
from tessy.config import load_config
from tessy.runtime import judge_roles, model_endpoints


@flow(name="filter", log_prints=True)
def filter_flow(
    config_path: Path = Path("configs/demo.yaml"), endpoints: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """`endpoints`: servers a parent flow already runs; otherwise this flow starts what it needs."""
    cfg = load_config(config_path)
    with recorded_run(cfg.warehouse, "filter", cfg.public_dict()) as run:
        with model_endpoints(cfg, judge_roles(cfg), endpoints) as running:
            run.stats = filter_questions(cfg, running, run.run_id)
    print(f"filter {run.run_id}: {run.stats}")
    return {"run_id": run.run_id, **run.stats}


def main(config: Annotated[Path, typer.Argument(help="pipeline YAML")] = Path("configs/demo.yaml")) -> None:
    filter_flow(config)


if __name__ == "__main__":
    typer.run(main)
