"""The Ray runner's overhead: the synthesize flow on the microworld with `runner.kind: threads` and with
`runner.kind: ray` against a local two-node Ray cluster (`ray start --head` plus one `ray start
--address` node on loopback), side by side in one run, against the same two vLLM servers (started
once, before either) and the demo's predictors. Each run starts from its own copy of the demo's
warehouse with its traces forgotten, so both plan the same `--questions` questions, however many
nights the demo has run; after one run of each that is not counted (cold servers, a fresh
cluster), the runs alternate for `--rounds` rounds.

tok/s is the tokens of the finished traces a run loaded over the wall time of the whole flow (plan, parts,
load). On this 2-core machine Ray has no cores to add, so the ratio measures its overhead. Target:
`ray_vs_threads` (median over rounds) at least 0.9. The overhead is split in two: `parts_tok_per_s`,
the same tokens over the parts' own time (their event loops, from the first request to the last trace
written), and `outside_parts_s`, the rest of the flow's wall time (planning, loading, and for Ray the
driver's connection and each worker's start: a fresh process importing torch and transformers). The
second is a fixed cost per run (about 8 s more than threads here), so the whole-flow ratio depends on
how long the run is: the default, 192 questions (576 jobs, about 2 minutes a run), keeps it to a few
percent of the run, as a night's hours do; at 64 questions (40 s runs) it is about a sixth.

Needs `make demo` first (models, questions, predictors in `.tessy/warehouse.duckdb`).

    python -m bench.runner [--questions 192] [--parts 2] [--rounds 2] [--json]

`--json`: the last line is one object, {"tok_per_s": {"threads": [..], "ray": [..]}, "ray_vs_threads":
r, "rounds": [r1, ..], "parts_tok_per_s": {"threads": [..], "ray": [..]}, "outside_parts_s":
{"threads": [..], "ray": [..]}}.
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
    questions: Annotated[int, typer.Option(help="questions per run (all three demo methods)")] = 192,
    parts: Annotated[int, typer.Option(help="synthesis parts")] = 2,
    rounds: Annotated[int, typer.Option(help="threads/ray pairs")] = 2,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    base = load_config(DEMO)
    if not base.warehouse.exists():
        raise typer.BadParameter(f"{base.warehouse} not found: run `make demo` first")
    shutil.rmtree(WORK, ignore_errors=True)
    runs: dict[str, list[tuple[int, float, float]]] = {"threads": [], "ray": []}
    with model_endpoints(base, ROLES) as endpoints, local_ray_cluster(nodes=2) as address:

        def timed(kind: str, name: str) -> tuple[int, float, float]:
            """Tokens loaded, the flow's wall time, the parts' own time."""
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
            inside = stats["parts_seconds"]
            print(f"{name}: {stats['traces']} traces, {tokens} tokens, {seconds:.1f} s, parts {inside:.1f} s")
            return tokens, seconds, inside

        # Not counted: the first threads run meets cold servers and loads the predictors into this
        # process; the first Ray run is the fresh cluster's first job (a night's job meets a warm one).
        for kind in ("threads", "ray"):
            timed(kind, f"warm-up-{kind}")
        for r in range(rounds):
            for kind in ("threads", "ray"):
                runs[kind].append(timed(kind, f"{kind}-{r}"))
    rates = {k: [tokens / wall for tokens, wall, _ in vs] for k, vs in runs.items()}
    ratios = [ray / threads for ray, threads in zip(rates["ray"], rates["threads"], strict=True)]
    result = {
        "tok_per_s": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
        "ray_vs_threads": round(statistics.median(ratios), 3),
        "rounds": [round(x, 3) for x in ratios],
        "parts_tok_per_s": {k: [round(n / inside, 1) for n, _, inside in vs] for k, vs in runs.items()},
        "outside_parts_s": {k: [round(wall - inside, 1) for _, wall, inside in vs] for k, vs in runs.items()},
    }
    for kind in runs:
        print(
            f"{kind}: {result['tok_per_s'][kind]} tok/s; in the parts {result['parts_tok_per_s'][kind]}"
            f" tok/s; outside them {result['outside_parts_s'][kind]} s"
        )
    print(f"ray_vs_threads: {result['ray_vs_threads']} (rounds {result['rounds']}, target >= 0.9)")
    if as_json:
        print(json.dumps(result))


if __name__ == "__main__":
    typer.run(main)
