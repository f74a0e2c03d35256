"""Synthesize: TESSY (and baseline) traces for contest questions that have none for this config.

The jobs are split into `synthesis.workers` parts that the task runner runs in parallel against the
same servers; each part writes shards, and one loader moves them into the warehouse.
"""

from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.runs import recorded_run
from tasks.synthesize import load_traces, plan, synthesize_part
from tessy.config import load_config
from tessy.runtime import model_endpoints, shard_dir


@flow(name="synthesize", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=8))
def synthesize_flow(
    config_path: Path = Path("configs/demo.yaml"),
    method: str | None = None,
    limit: int | None = None,
    endpoints: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """`endpoints`: servers a parent flow already runs; otherwise this flow starts them."""
    cfg = load_config(config_path)
    methods = [method] if method else list(cfg.synthesis.methods)
    shards = shard_dir(cfg)
    with recorded_run(cfg.warehouse, "synthesize", cfg.public_dict()) as run:
        jobs, predictors = plan(cfg, methods, limit if limit is not None else cfg.synthesis.limit)
        parts = [jobs[i :: cfg.synthesis.workers] for i in range(cfg.synthesis.workers)]
        with model_endpoints(cfg, running=endpoints) as running:
            futures = [
                synthesize_part.submit(cfg, running, predictors, part, shards, i)
                for i, part in enumerate(parts)
                if part
            ]
            results = [f.result() for f in futures]
        run.stats = {
            "jobs": len(jobs),
            "done": sum(r["done"] for r in results),
            "failed": sum(r["failed"] for r in results),
            **load_traces(cfg.warehouse, shards, run.run_id),
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
