"""Evaluate: fine-tune the student on each method's traces and measure held-out pass@1 (`evaluations`)."""

from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow

from tasks.evaluate import evaluate_traces
from tasks.runs import run_name, stage_run
from tessy.config import DEFAULT_CONFIG, PipelineConfig


@flow(name="evaluate", flow_run_name=run_name, log_prints=True)
def evaluate_flow(
    config_path: Path = DEFAULT_CONFIG, release: str | None = None, cfg: PipelineConfig | None = None
) -> dict[str, Any]:
    """Fine-tune the student on the traces of each method in `evaluate.methods` (once per seed), serve
    each result and the base on a fresh vLLM server, and store held-out pass@1 with a 95% interval in
    `evaluations`.

    Args:
        config_path: pipeline YAML, relative to the repository root.
        release: evaluate only the questions this release answers [default: all of the config's].
        cfg: the loaded config, when a parent flow passes its own down.
    """
    with stage_run("evaluate", config_path, cfg) as (cfg, run):
        outcome = evaluate_traces(cfg, run.run_id, release)
        run.stats = outcome.stats
    return {"run_id": run.run_id, **run.stats}


def main(
    config: Annotated[Path, typer.Argument(help="pipeline YAML")] = DEFAULT_CONFIG, release: str | None = None
) -> None:
    evaluate_flow(config, release)


if __name__ == "__main__":
    typer.run(main)
