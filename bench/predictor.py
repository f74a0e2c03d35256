"""Boundary predictor latency: incremental (cached keys/values) vs full-window recomputation.

Many samples at once (one batched call per step, as the synthesis scheduler makes them); every step
gives each sample ~N new tokens on top of a ~W-token window. Both modes answer the same calls side by
side in one run, on the same windows, so their labels must agree; the ratio is full / incremental.

    python bench/predictor.py [--model DIR] [--samples 256] [--window 200] [--new-tokens 10] [--json]

--model takes a causal LM dir (e.g. the microworld student) or a trained predictor. Without it, a
random-init Qwen3 base (--preset tiny|small) with its own BPE tokenizer is built in a
temporary dir: latency does not depend on the weights, only on the architecture.
"""

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from tessy.boundary import BoundaryPredictor, Request, make_base, random_base

PRESETS = {
    "tiny": dict(
        hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, head_dim=64, intermediate_size=128
    ),
    "small": dict(
        hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2, head_dim=64, intermediate_size=768
    ),
}
VOCAB = (
    "we need to compute the minimum cost path over all nodes so okay let me think about the edge case "
    "hmm wait if the array is empty we return zero alright the loop runs from one to n and the answer "
    "is the sum of values modulo a prime complexity is linear in the input size"
).split()


def _text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n_words))


def _chunks(tokenizer, text: str, size: int, rng: random.Random) -> list[str]:
    """`text` cut at token boundaries into pieces of size/2 .. 3*size/2 predictor tokens (varied, so
    the samples' windows fill up and restart at different steps, as they would in a real run)."""
    starts = [a for a, _ in tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).offsets]
    cuts = [0]
    while cuts[-1] < len(starts):
        cuts.append(cuts[-1] + rng.randint(max(1, size // 2), size + size // 2))
    bounds = [starts[c] for c in cuts[:-1]] + [len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def run(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:  # saved once with its head, so both modes share the same (maybe fresh) head
            model_dir, base = make_base(args.model, Path(tmp) / "base"), f"model {args.model}"
        else:
            corpus = [_text(rng, 80) for _ in range(200)]
            model_dir = random_base(Path(tmp) / "base", corpus, seed=args.seed, **PRESETS[args.preset])
            base = f"random-init Qwen3 ({args.preset}: {PRESETS[args.preset]})"
        modes = {
            name: BoundaryPredictor(model_dir, device=args.device, max_window=args.window, incremental=inc)
            for name, inc in (("incremental", True), ("full", False))
        }
    tokenizer = modes["full"].tokenizer
    steps = args.warmup + args.steps
    # ~window tokens of context before the first step (the first, untimed steps fill the windows), then
    # one chunk of new text per sample and step.
    streams = [
        _chunks(tokenizer, _text(rng, 2 * args.window + 8 * steps * args.new_tokens), args.new_tokens, rng)
        for _ in range(args.samples)
    ]
    head = args.window // args.new_tokens
    contexts = ["".join(s[:head]) for s in streams]

    times: dict[str, list[float]] = {m: [] for m in modes}
    agree = total = 0
    for step in range(steps):
        requests = [
            Request(str(i), contexts[i], streams[i][head + step], "teacher") for i in range(args.samples)
        ]
        if step == args.warmup:  # count work over the timed steps only
            for predictor in modes.values():
                predictor.stats.clear()
        answers = {}
        for name, predictor in modes.items():
            if predictor.device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            answers[name] = predictor.predict(requests)
            if predictor.device.type == "cuda":
                torch.cuda.synchronize()
            if step >= args.warmup:
                times[name].append(time.perf_counter() - t)
        for a, b in zip(answers["incremental"], answers["full"], strict=True):
            agree += sum(x == y for x, y in zip(a.next_classes, b.next_classes, strict=True))
            total += len(a.next_classes)
        for i, r in enumerate(requests):
            contexts[i] = r.context + r.new

    inc, full = (statistics.mean(times[m]) for m in ("incremental", "full"))
    return {
        "base": base,
        "device": str(modes["full"].device),
        "torch_threads": torch.get_num_threads(),
        "samples": args.samples,
        "max_window": args.window,
        "new_tokens_per_step": args.new_tokens,
        "steps_timed": args.steps,
        "mean_window_tokens": round(modes["full"].stats["tokens_fed"] / (args.steps * args.samples), 1),
        "incremental_ms_per_step": round(inc * 1e3, 2),
        "full_ms_per_step": round(full * 1e3, 2),
        "speedup_full_over_incremental": round(full / inc, 2),
        "median_ms_per_step": {m: round(statistics.median(t) * 1e3, 2) for m, t in times.items()},
        "tokens_fed_per_step": {m: round(p.stats["tokens_fed"] / args.steps) for m, p in modes.items()},
        "forwards": {m: p.stats["forwards"] for m, p in modes.items()},
        "reencodes": modes["incremental"].stats["reencodes"],
        "label_agreement": round(agree / total, 6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a predictor or causal-LM dir (default: a random base)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--new-tokens", type=int, default=10)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(args)
    if args.json:
        print(json.dumps(result))
        return
    print(f"base: {result['base']} on {result['device']} ({result['torch_threads']} threads)")
    print(f"{args.samples} samples, +{args.new_tokens} tokens/step, window <= {args.window} tokens")
    print(f"incremental: {result['incremental_ms_per_step']:.1f} ms/step (mean over {args.steps} steps)")
    print(f"full window: {result['full_ms_per_step']:.1f} ms/step")
    print(f"ratio full / incremental: {result['speedup_full_over_incremental']:.2f}x")
    print(f"tokens fed per step: {result['tokens_fed_per_step']}")
    print(f"label agreement between the modes: {result['label_agreement']:.4%}")


if __name__ == "__main__":
    main()
