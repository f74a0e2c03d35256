"""The Ray runner's overhead: the synthesize flow on the microworld with `runner.kind: threads` and with
`runner.kind: ray` against a local two-node Ray cluster (`ray start --head` plus one `ray start
--address` node on loopback), side by side in one run, against the same two vLLM servers (started
once, before either) and the demo's predictors. Each run starts from its own copy of the demo's
warehouse with its traces forgotten, so both plan the same `--questions` questions, however many
nights the demo has run; after one run of each that is not counted (cold servers, a fresh
cluster), the runs alternate for `--rounds` rounds.

tok/s is the tokens of the finished traces a run loaded over the wall time of the whole flow (plan, parts,
load). On this 2-core machine Ray has no cores to add, so the ratio measures its overhead. Target:
`ray_vs_threads` (median over rounds) at least 0.9.

Needs `make demo` first (models, questions, predictors in `.tessy/warehouse.duckdb`).

    python -m bench.runner [--questions 16] [--parts 2] [--rounds 2] [--json]

`--json`: the last line is one object, {"tok_per_s": {"threads": [..], "ray": [..]}, "ray_vs_threads":
r, "rounds": [r1, ..]}.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Annotated

import typer

from flows.synthesize import synthesize_flow
from tasks.runner import local_ray_cluster
from tessy.config import RunnerConfig, load_config
from tessy.runtime import ROLES, model_endpoints
from warehouse.db import open_warehouse

WORK = Path(".tessy/bench/runner")
DEMO = Path("configs/demo.yaml")


def forget_traces(db: Path) -> None:
    """The warehouse as before its first synthesis: no traces, and no plan marks (which say what
    planning has read)."""
    with open_warehouse(db) as wh:
        for table in ("spans", "traces", "plan_marks"):
            wh.con.execute(f"DELETE FROM {table}")


def main(
    questions: Annotated[int, typer.Option(help="questions per run (all three demo methods)")] = 16,
    parts: Annotated[int, typer.Option(help="synthesis parts")] = 2,
    rounds: Annotated[int, typer.Option(help="threads/ray pairs")] = 2,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    base = load_config(DEMO)
    if not base.warehouse.exists():
        raise typer.BadParameter(f"{base.warehouse} not found: run `make demo` first")
    shutil.rmtree(WORK, ignore_errors=True)
    rates: dict[str, list[float]] = {"threads": [], "ray": []}
    with model_endpoints(base, ROLES) as endpoints, local_ray_cluster(nodes=2) as address:

        def tok_per_s(kind: str, name: str) -> float:
            work = WORK / name
            work.mkdir(parents=True)
            shutil.copy(base.warehouse, work / "wh.duckdb")
            forget_traces(work / "wh.duckdb")
            cfg = base.model_copy(
                update={
                    "warehouse": work / "wh.duckdb",
                    "workdir": work,
                    "runner": RunnerConfig(kind=kind, address=address, parts=parts),
                    "synthesis": base.synthesis.model_copy(update={"limit": questions}),
                }
            )
            started = time.perf_counter()
            stats = synthesize_flow(DEMO, endpoints=endpoints, cfg=cfg)
            seconds = time.perf_counter() - started
            with open_warehouse(cfg.warehouse, read_only=True) as wh:
                tokens = wh.scalar(
                    "SELECT sum(n_tokens) FROM traces WHERE run_id = ? AND status = 'ok'", [stats["run_id"]]
                )
            print(f"{name}: {stats['traces']} traces, {tokens} tokens, {seconds:.1f} s")
            return tokens / seconds

        # Not counted: the first threads run meets cold servers and loads the predictors into this
        # process; the first Ray run is the fresh cluster's first job (a night's job meets a warm one).
        for kind in ("threads", "ray"):
            tok_per_s(kind, f"warm-up-{kind}")
        for r in range(rounds):
            for kind in ("threads", "ray"):
                rates[kind].append(tok_per_s(kind, f"{kind}-{r}"))
    ratios = [ray / threads for ray, threads in zip(rates["ray"], rates["threads"], strict=True)]
    result = {
        "tok_per_s": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
        "ray_vs_threads": round(statistics.median(ratios), 3),
        "rounds": [round(x, 3) for x in ratios],
    }
    for kind, values in result["tok_per_s"].items():
        print(f"{kind}: {values} tok/s")
    print(f"ray_vs_threads: {result['ray_vs_threads']} (rounds {result['rounds']}, target >= 0.9)")
    if as_json:
        print(json.dumps(result))


if __name__ == "__main__":
    typer.run(main)
