"""Synthesize: TESSY (and baseline) traces for contest questions that have none for this config.

The jobs are split into `synthesis.workers` parts that the task runner runs in parallel against the
same servers; each part writes shards, and one loader moves them into the warehouse.
"""

from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.runs import recorded_run, run_name
from tasks.servers import served
from tasks.synthesize import load_traces, plan, synthesize_part
from tessy.config import load_config
from tessy.preflight import ensure_ready
from tessy.runtime import ROLES, shard_dir


@flow(
    name="synthesize",
    flow_run_name=run_name,
    log_prints=True,
    task_runner=ThreadPoolTaskRunner(max_workers=8),
)
def synthesize_flow(
    config_path: Path = Path("configs/demo.yaml"),
    method: str | None = None,
    limit: int | None = None,
    endpoints: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Synthesize TESSY and baseline traces for the contest questions that have none for this config
    (both models' servers, and the predictors for TESSY), write them to shards, load them into
    `traces` / `spans`.

    Args:
        config_path: pipeline YAML, relative to the repository root.
        method: one method only [default: the config's methods].
        limit: most questions [default: the config's synthesis.limit].
        endpoints: servers a parent flow already runs (role -> URLs); otherwise this flow starts them.
    """
    cfg = load_config(config_path)
    ensure_ready(cfg, roles=ROLES if endpoints is None else (), config_path=config_path)
    methods = [method] if method else list(cfg.synthesis.methods)
    shards = shard_dir(cfg)
    with recorded_run(cfg.warehouse, "synthesize", cfg.public_dict()) as run:
        jobs, predictors = plan(cfg, methods, limit if limit is not None else cfg.synthesis.limit)
        parts = [jobs[i :: cfg.synthesis.workers] for i in range(cfg.synthesis.workers)]
        with served(cfg, ROLES, endpoints) as running:
            futures = [
                synthesize_part.submit(cfg, running, predictors, part, shards, i)
                for i, part in enumerate(parts)
                if part
            ]
            results = [f.result() for f in futures]
        seconds = max((r["seconds"] for r in results), default=0.0)
        run.stats = {
            "jobs": len(jobs),
            "done": sum(r["done"] for r in results),
            "failed": sum(r["failed"] for r in results),
            **load_traces(cfg.warehouse, shards, run.run_id, seconds),
        }
    print(f"synthesize {run.run_id}: {run.stats}")
    return {"run_id": run.run_id, **run.stats}


def main(
    config: Annotated[Path, typer.Argument(help="pipeline YAML")] = Path("configs/demo.yaml"),
    method: str | None = None,
    limit: int | None = None,
) -> None:
    synthesize_flow(config, method, limit)


if __name__ == "__main__":
    typer.run(main)
