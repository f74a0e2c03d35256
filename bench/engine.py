"""Throughput of the HTTP engine against vLLM's own offline engine, side by side in one run.

The same N concurrent completions of exactly M tokens (ignore_eos) on the microworld teacher:
(a) through `OpenAIEngine` streaming from a vLLM server started by `tessy.engines.servers`,
(b) through `vllm.LLM.generate` in a subprocess of the engine environment.
Each side is warmed up, then timed `--rounds` times; the best round counts (other work on the machine
only ever slows a round down). ratio = a / b; the target is >= 0.8.

    .venv/bin/python bench/engine.py [--n 64] [--m 256] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from tessy.engines import Sampling
from tessy.engines.openai import OpenAIEngine
from tessy.engines.servers import (
    CPU_BLOCK_SIZE,
    ServerGroup,
    ServerSpec,
    cpu_batch_budget,
    is_cpu_build,
    vllm_python,
)
from tessy.microworld.build import build, model_dirs, read_stamp
from tessy.templates import get_family

MAX_NUM_SEQS = 256  # both sides (vLLM's CPU defaults differ: 128 for the server, 256 offline)

# Run by the engine environment's python: no tessy imports there.
_OFFLINE = """
import json, sys, time
from vllm import LLM, SamplingParams

def main():
    cfg = json.load(open(sys.argv[1]))
    llm = LLM(model=cfg["model"], max_model_len=cfg["max_model_len"], enable_prefix_caching=True, seed=0,
              max_num_seqs=cfg["max_num_seqs"], **cfg["scheduler"])
    def params(m):
        return [SamplingParams(max_tokens=m, ignore_eos=True, seed=i, **cfg["sampling"])
                for i in range(len(cfg["prompts"]))]
    llm.generate(cfg["prompts"], params(cfg["warmup_tokens"]), use_tqdm=False)
    for _ in range(cfg["rounds"]):
        start = time.perf_counter()
        outs = llm.generate(cfg["prompts"], params(cfg["m"]), use_tqdm=False)
        seconds = time.perf_counter() - start
        tokens = sum(len(o.outputs[0].token_ids) for o in outs)
        print("ROUND " + json.dumps({"tokens": tokens, "seconds": seconds}), flush=True)

if __name__ == "__main__":
    main()
"""


def pick_model(explicit: Path | None) -> tuple[Path, str]:
    """The default microworld teacher if built, else the tiny preset's (built here in seconds)."""
    if explicit is not None:
        return explicit, f"given: {explicit}"
    default = model_dirs()["teacher"]
    if read_stamp(default) is not None:
        return default, "microworld default teacher"
    return build(preset="tiny")["teacher"], "microworld tiny teacher (default preset not built yet)"


def prompts(n: int, model: Path) -> list[str]:
    """Teacher prompts rendered by the model's own chat template (the microworld's system message)."""
    from transformers import AutoTokenizer

    family = get_family("gpt-oss", AutoTokenizer.from_pretrained(model))
    return [
        family.thinking_prompt(f"Problem {i}: read {i + 2} integers and print their sum modulo 1000.")
        for i in range(n)
    ]


async def _http_round(
    engine: OpenAIEngine, texts: list[str], m: int, sampling: Sampling
) -> tuple[int, float]:
    params = [replace(sampling, max_tokens=m, seed=i) for i in range(len(texts))]
    start = time.perf_counter()
    outs = await asyncio.gather(*(engine.complete(t, p) for t, p in zip(texts, params, strict=True)))
    seconds = time.perf_counter() - start
    if any(o.n_tokens != m for o in outs):
        raise RuntimeError(f"expected {m} tokens per completion, got {sorted({o.n_tokens for o in outs})}")
    return sum(o.n_tokens for o in outs), seconds


def bench_http(model: Path, texts: list[str], args: argparse.Namespace, sampling: Sampling) -> list[dict]:
    spec = ServerSpec(
        model,
        name="bench",
        max_model_len=args.max_model_len,
        kv_cache_gib=args.kv_cache_gib,
        extra_args=("--max-num-seqs", str(MAX_NUM_SEQS)),
    )
    with ServerGroup([spec], log_dir=Path(tempfile.mkdtemp(prefix="tessy-bench-"))) as group:

        async def run() -> list[dict]:
            async with OpenAIEngine(group.endpoints["bench"], model="bench") as engine:
                await _http_round(engine, texts, args.warmup_tokens, sampling)
                rounds = []
                for _ in range(args.rounds):
                    tokens, seconds = await _http_round(engine, texts, args.m, sampling)
                    rounds.append({"tokens": tokens, "seconds": seconds})
                return rounds

        return asyncio.run(run())


def bench_offline(model: Path, texts: list[str], args: argparse.Namespace, sampling: Sampling) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="tessy-bench-") as tmp:
        script, config = Path(tmp) / "offline.py", Path(tmp) / "config.json"
        script.write_text(_OFFLINE)
        keys = ("temperature", "top_p", "top_k", "min_p")
        # The server's scheduler and cache settings, so both sides batch alike (servers.cpu_workarounds).
        scheduler = {}
        if is_cpu_build(vllm_python()):
            scheduler = {
                "enable_chunked_prefill": False,
                "max_num_batched_tokens": cpu_batch_budget(args.max_model_len),
                "block_size": CPU_BLOCK_SIZE,
            }
        config.write_text(
            json.dumps(
                {
                    "model": str(model),
                    "max_model_len": args.max_model_len,
                    "prompts": texts,
                    "m": args.m,
                    "warmup_tokens": args.warmup_tokens,
                    "rounds": args.rounds,
                    "sampling": {k: getattr(sampling, k) for k in keys},
                    "max_num_seqs": MAX_NUM_SEQS,
                    "scheduler": scheduler,
                }
            )
        )
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(args.kv_cache_gib)}
        proc = subprocess.run(
            [str(vllm_python()), str(script), str(config)], capture_output=True, text=True, env=env
        )
    if proc.returncode != 0:
        raise RuntimeError(f"offline vLLM run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return [json.loads(line[6:]) for line in proc.stdout.splitlines() if line.startswith("ROUND ")]


def best_rate(rounds: list[dict]) -> float:
    return max(r["tokens"] / r["seconds"] for r in rounds)


def median_rate(rounds: list[dict]) -> float:
    return statistics.median(r["tokens"] / r["seconds"] for r in rounds)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None, help="model dir (default: microworld teacher)")
    parser.add_argument("--n", type=int, default=64, help="concurrent completions")
    parser.add_argument("--m", type=int, default=256, help="tokens per completion")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup-tokens", type=int, default=32)
    parser.add_argument("--max-model-len", type=int, default=1024)
    parser.add_argument("--kv-cache-gib", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args()

    model, which = pick_model(args.model)
    texts = prompts(args.n, model)
    sampling = Sampling(ignore_eos=True)
    print(f"model: {which} ({model}); {args.n} concurrent x {args.m} tokens, best of {args.rounds}")
    http = bench_http(model, texts, args, sampling)
    print(f"(a) openai engine -> vLLM server: {best_rate(http):8.1f} tokens/s  rounds {_fmt(http)}")
    offline = bench_offline(model, texts, args, sampling)
    print(f"(b) vLLM LLM.generate (offline):  {best_rate(offline):8.1f} tokens/s  rounds {_fmt(offline)}")
    ratio = best_rate(http) / best_rate(offline)
    median_ratio = median_rate(http) / median_rate(offline)
    print(f"ratio (a/b): {ratio:.3f} best-of-rounds, {median_ratio:.3f} median  (target >= 0.8)")
    if args.json:
        result = {
            "model": str(model),
            "model_kind": which,
            "n": args.n,
            "m": args.m,
            "http_tokens_per_s": round(best_rate(http), 1),
            "offline_tokens_per_s": round(best_rate(offline), 1),
            "http_rounds": http,
            "offline_rounds": offline,
            "median_ratio": round(median_ratio, 4),
            "ratio": round(ratio, 4),
        }
        print(json.dumps(result))


def _fmt(rounds: list[dict]) -> str:
    return " ".join(f"{r['tokens'] / r['seconds']:.0f}" for r in rounds)


if __name__ == "__main__":
    main()
