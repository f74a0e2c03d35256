"""Synthesis throughput on the microworld through vLLM servers, side by side on the same questions:

(a) teacher-only generation (the ceiling);
(b) TESSY in stream mode: every sample its own coroutine, the predictor run as text streams in;
(c) TESSY fixed-k in lock-step batches the way the paper's reference code runs: student 5 / teacher
    10 tokens a step, one request per sample per step, the whole batch waits for its slowest member,
    then the predictors run on the whole batch, each sample's window encoded whole (the reference
    feeds the classifier the last 200 tokens every step);
(c') the same loop with tessy's incremental predictors (only new tokens fed), for comparison.

Prints tokens/s (student-tokenizer tokens of finished responses per wall second) of each, and
`stream_vs_teacher_only` = b/a, `stream_vs_lockstep` = b/c, `stream_vs_lockstep_incremental` = b/c'
(`--json`: one object, last line). `--rounds N` runs all four N times: medians, and each round's ratios
(a shared machine's load moves single runs by 10-15%).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import median

import torch
import typer

from tessy.boundary.base import make_base
from tessy.boundary.evaluate import gold_windows
from tessy.boundary.predictor import BoundaryPredictor, Request
from tessy.boundary.train import TrainConfig, train
from tessy.config import PipelineConfig
from tessy.engines.servers import ServerGroup, ServerSpec
from tessy.microworld.build import build, read_stamp
from tessy.microworld.problems import generate_problems
from tessy.runtime import synthesizer_from_config
from tessy.synthesis.machine import Synthesizer, word_cut
from tessy.synthesis.scheduler import Job, run_jobs
from tessy.synthesis.shards import ShardWriter
from warehouse.predictors import PredictorRef

WORK = Path(".tessy/bench/synthesis")


def predictors(models: dict[str, Path]) -> dict[str, Path]:
    """One predictor per role, trained on the generator's own style spans (cached per model build)."""
    out = {}
    root = WORK / "predictors" / read_stamp(models["student"])["key"]
    for role in ("student", "teacher"):
        target = root / role
        if not (target / "config.json").exists():
            windows = gold_windows(role, 300, words=60, per_response=3, seed=5, split="train")
            base = make_base(models["student"], root / f"base-{role}")
            train(
                base,
                windows,
                target,
                TrainConfig(lr=1e-3, epochs=2, batch_size=16),
            )
        out[role] = target
    return out


def synthesizer(models, urls, predictor_dirs, mode: str) -> Synthesizer:
    """The pipeline's own Synthesizer (`synthesizer_from_config`) on the bench's servers and predictors."""
    cfg = PipelineConfig(
        name="bench-synthesis",
        models={
            role: {"path": str(models[role]), "family": family, "engine": "openai", "served_name": role}
            for role, family in (("student", "qwen3"), ("teacher", "gpt-oss"))
        },
        synthesis={"mode": mode, "max_thinking_tokens": 1024},
    )
    refs = {role: PredictorRef(role, str(path)) for role, path in predictor_dirs.items()}
    return synthesizer_from_config(cfg, urls, refs)


def run_scheduled(synth: Synthesizer, questions: list[str], method: str, name: str) -> tuple[float, int]:
    jobs = [Job(f"{name}-{i}", f"q{i}", q, method) for i, q in enumerate(questions)]
    writer = ShardWriter(WORK / "shards" / f"{name}-{time.time_ns()}", shard_size=10_000)
    start = time.perf_counter()
    stats = asyncio.run(run_jobs(synth, jobs, writer, concurrency=len(jobs), show_progress=False))
    return stats.tokens / (time.perf_counter() - start), stats.failed


@dataclass
class _Sample:
    question: str
    role: str = "student"
    thinking: str = ""
    answer: str | None = None


def run_lockstep(synth: Synthesizer, questions: list[str], predictors: dict[str, BoundaryPredictor]) -> float:
    """The reference code's loop: every step sends one k-token request per unfinished sample (or its
    answer request), waits for all of them, then runs each role's predictor on its samples at once."""
    writers, s = synth.writers, synth.settings

    async def loop() -> list[_Sample]:
        samples = [_Sample(q) for q in questions]
        step = 0
        while active := [x for x in samples if x.answer is None]:
            answering = [x.role == "answer" for x in active]
            calls = []
            for x, answer in zip(active, answering, strict=True):
                w = writers["student" if answer else x.role]
                prompt = (
                    w.family.answer_prompt(x.question, x.thinking)
                    if answer
                    else (w.family.thinking_prompt(x.question) + x.thinking)
                )
                params = replace(s.sampling, max_tokens=s.max_answer_tokens if answer else w.k, seed=step)
                calls.append(w.engine.complete(prompt, params))
            completions = await asyncio.gather(*calls)  # the batch waits for its slowest member
            for role in ("student", "teacher"):
                family = writers[role].family
                mine = [(x, c) for x, c in zip(active, completions, strict=True) if x.role == role]
                live = [
                    (x, c)
                    for x, c in mine
                    if c.text and c.finish_reason != "stop" and not family.find_end(c.text)
                ]
                cuts = predictors[role].predict(
                    [Request(str(id(x)), x.thinking, c.text, role) for x, c in live]
                )
                cut_of = {id(x): cut for (x, _), cut in zip(live, cuts, strict=True)}
                for x, c in mine:
                    cut = cut_of.get(id(x))
                    if cut is None or synth.count(x.thinking) > s.max_thinking_tokens:
                        end = family.find_end(c.text)
                        x.thinking += c.text[: end[0]] if end else c.text
                        x.role = "answer"
                    elif cut.switch:
                        x.thinking += c.text[: word_cut(c.text, cut.keep, "extend")]
                        x.role = "teacher" if role == "student" else "student"
                    else:
                        x.thinking += c.text
            for x, c, answer in zip(active, completions, answering, strict=True):
                if answer:
                    x.answer = c.text
            step += 1
        return samples

    start = time.perf_counter()
    samples = asyncio.run(loop())
    seconds = time.perf_counter() - start
    for x in samples:
        for predictor in predictors.values():
            predictor.release(str(id(x)))
    return sum(synth.count(f"<think>\n{x.thinking}\n</think>\n\n{x.answer}") for x in samples) / seconds


def main(
    questions: int = 32,
    rounds: int = typer.Option(1, help="times to run all four; medians are printed"),
    warmup: int = typer.Option(16, help="other questions run through TESSY first, untimed"),
    predictor_threads: int = typer.Option(1, help="torch threads of the predictors in this process"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    # On a small CPU machine the cores belong to the servers: with 2 predictor threads on 2 cores each
    # forward fights their bound workers, and lock-step (which predicts while they wait) ran 1.7x slower.
    torch.set_num_threads(predictor_threads)
    models = build()
    predictor_dirs = predictors(models)
    # One core per model (they sit on separate GPUs in production); vLLM alone binds both to core 0.
    # Below the predictors in priority, as in configs/demo.yaml: they wait for them.
    specs = [
        ServerSpec(
            models[r], name=r, max_model_len=2048, kv_cache_gib=2, cpus_per_replica=1, first_cpu=i, nice=10
        )
        for i, r in enumerate(("student", "teacher"))
    ]
    texts = [p.statement for p in generate_problems(questions, seed=9, split="eval")]
    tok_s: dict[str, list[float]] = {
        "teacher_only": [],
        "stream": [],
        "lockstep": [],
        "lockstep_incremental": [],
    }
    failed = []
    with ServerGroup(specs, log_dir=WORK / "logs") as group:
        urls = {role: group.endpoints[role] for role in ("student", "teacher")}
        stream = synthesizer(models, urls, predictor_dirs, "stream")
        # Whichever run came first paid for the servers' and predictors' first calls (~10%).
        run_scheduled(
            stream, [p.statement for p in generate_problems(warmup, seed=10, split="eval")], "tessy", "w"
        )
        lockstep = synthesizer(models, urls, predictor_dirs, "fixed-k")
        whole = {r: BoundaryPredictor(path, incremental=False) for r, path in predictor_dirs.items()}
        ours = {r: w.boundary.predictor for r, w in lockstep.writers.items()}
        for i in range(rounds):
            tok_s["teacher_only"].append(run_scheduled(stream, texts, "teacher-only", f"a{i}")[0])
            b, n_failed = run_scheduled(stream, texts, "tessy", f"b{i}")
            tok_s["stream"].append(b)
            failed.append(n_failed)
            tok_s["lockstep"].append(run_lockstep(lockstep, texts, whole))
            tok_s["lockstep_incremental"].append(run_lockstep(lockstep, texts, ours))
    ratios = {  # per round: the two runs of a ratio ran minutes apart, not rounds apart
        f"stream_vs_{base}": [b / c for b, c in zip(tok_s["stream"], tok_s[base], strict=True)]
        for base in ("teacher_only", "lockstep", "lockstep_incremental")
    }
    result = {
        "questions": questions,
        "rounds": rounds,
        "predictor_threads": predictor_threads,
        "teacher_only_tok_s": round(median(tok_s["teacher_only"]), 1),
        "tessy_stream_tok_s": round(median(tok_s["stream"]), 1),
        "tessy_lockstep_tok_s": round(median(tok_s["lockstep"]), 1),
        "tessy_lockstep_incremental_tok_s": round(median(tok_s["lockstep_incremental"]), 1),
        "stream_failed": failed,
        **{name: round(median(values), 3) for name, values in ratios.items()},
        **{f"{name}_rounds": [round(v, 3) for v in values] for name, values in ratios.items()},
    }
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>34}: {value}")


if __name__ == "__main__":
    typer.run(main)
