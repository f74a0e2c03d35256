"""Routing across several real vLLM replicas, counted by the servers themselves: N completions go
through one `OpenAIEngine` over R replicas of the microworld teacher with a cap of C requests in
flight per replica. Each replica's `/metrics` give the requests it finished
(`vllm:request_success_total`) and, sampled every 50 ms during the run, the most it ran at once
(`vllm:num_requests_running`). Targets: every replica serves some, and none runs more than C.
Least-outstanding routing sends more to the replicas that finish sooner, so on replicas of unequal
speed (here R CPU servers share the machine's cores) the counts are not even, by design.

    .venv/bin/python bench/replicas.py [--replicas 4] [--n 96] [--cap 4] [--m 64] [--json]

`--json`: the last line is one object, {"served": {url: n}, "peak_running": {url: n}, "cap": c,
"seconds": s}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from tessy.engines import Sampling
from tessy.engines.openai import OpenAIEngine
from tessy.engines.servers import ServerGroup, ServerSpec, server_metric
from tessy.microworld.build import build

SUCCESS, RUNNING = "vllm:request_success_total", "vllm:num_requests_running"


async def drive(urls: list[str], n: int, cap: int, m: int) -> tuple[dict[str, float], float]:
    """Send `n` completions of `m` tokens; returns each replica's peak running requests and the
    seconds the run took."""
    peak = dict.fromkeys(urls, 0.0)
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            for url in urls:
                running = await asyncio.to_thread(server_metric, url, RUNNING)
                peak[url] = max(peak[url], running)
            await asyncio.sleep(0.05)

    started = time.perf_counter()
    async with OpenAIEngine(urls, max_outstanding=cap) as engine:
        watcher = asyncio.create_task(watch())
        params = [Sampling(max_tokens=m, seed=i, ignore_eos=True) for i in range(n)]
        await asyncio.gather(*(engine.complete(f"Question {i}", p) for i, p in enumerate(params)))
        done.set()
        await watcher
    return peak, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--n", type=int, default=96)
    parser.add_argument("--cap", type=int, default=4)
    parser.add_argument("--m", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        teacher = build(Path(tmp) / "models", preset="tiny")["teacher"]
        spec = ServerSpec(teacher, name="teacher", max_model_len=1024, kv_cache_gib=1, replicas=args.replicas)
        with ServerGroup([spec], log_dir=Path(tmp) / "logs") as group:
            urls = group.endpoints["teacher"]
            before = {u: server_metric(u, SUCCESS) for u in urls}
            peak, seconds = asyncio.run(drive(urls, args.n, args.cap, args.m))
            served = {u: server_metric(u, SUCCESS) - before[u] for u in urls}
    share = args.n / args.replicas
    for url in urls:
        print(f"{url}: served {served[url]:.0f} (fair share {share:.0f}), at most {peak[url]:.0f} running")
    used = all(v > 0 for v in served.values())
    capped = all(v <= args.cap for v in peak.values())
    print(f"every replica served: {used}; cap {args.cap} held: {capped}; {seconds:.1f} s")
    if args.json:
        print(json.dumps({"served": served, "peak_running": peak, "cap": args.cap, "seconds": seconds}))


if __name__ == "__main__":
    main()
