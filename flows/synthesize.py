"""Synthesize: TESSY (and baseline) traces for contest questions that have none for this config.

The plan is written to storage in `runner.parts` parts, which run side by side against the same
servers on the configured task runner (threads of this process, or Ray tasks on a cluster); each part
writes shards, and one loader moves them into the warehouse.
"""

from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow

from tasks.runner import map_parts
from tasks.runs import run_name, stage_run
from tasks.servers import served
from tasks.synthesize import load_traces, plan, synthesize_part
from tessy.config import DEFAULT_CONFIG, PipelineConfig
from tessy.runtime import ROLES, Endpoints


@flow(name="synthesize", flow_run_name=run_name, log_prints=True)
def synthesize_flow(
    config_path: Path = DEFAULT_CONFIG,
    method: str | None = None,
    limit: int | None = None,
    endpoints: Endpoints | None = None,
    cfg: PipelineConfig | None = None,
) -> dict[str, Any]:
    """Synthesize TESSY and baseline traces for the contest questions that have none for this config
    (both models' servers, and the predictors for TESSY), write them to shards, load them into
    `traces` / `spans`.

    Args:
        config_path: pipeline YAML, relative to the repository root.
        method: one method only [default: the config's methods].
        limit: most questions [default: the config's synthesis.limit].
        endpoints: servers a parent flow already runs (role -> URLs); otherwise this flow starts them.
        cfg: the loaded config, when a parent flow passes its own down.
    """
    roles = ROLES if endpoints is None else ()
    with stage_run("synthesize", config_path, cfg, roles=roles, runner=True) as (cfg, run):
        methods = [method] if method else list(cfg.synthesis.methods)
        parts, predictors, jobs = plan(
            cfg, run.run_id, methods, limit if limit is not None else cfg.synthesis.limit
        )
        with served(cfg, ROLES, endpoints) as running:
            calls = [(cfg, running, predictors, part, i) for i, part in enumerate(parts)]
            results = map_parts(cfg.runner, "synthesize-parts", synthesize_part, calls)
        seconds = max((r["seconds"] for r in results), default=0.0)
        run.stats = {
            "jobs": jobs,
            "done": sum(r["done"] for r in results),
            "failed": sum(r["failed"] for r in results),
            # The parts' own time: the flow's wall time less this is what the runner adds around them.
            "parts_seconds": round(seconds, 1),
            **load_traces(cfg, run.run_id, seconds),
        }
    return {"run_id": run.run_id, **run.stats}


def main(
    config: Annotated[Path, typer.Argument(help="pipeline YAML")] = DEFAULT_CONFIG,
    method: str | None = None,
    limit: int | None = None,
) -> None:
    synthesize_flow(config, method, limit)


if __name__ == "__main__":
    typer.run(main)
