"""Evaluate: does training on this config's traces make the student better? For each method, the
student is fine-tuned on the method's traces (once per seed) and its held-out pass@1 measured; the
base student is measured the same way, once per (base, benchmark, settings), and reused.

Reads: the config's finished traces of `evaluate.methods` (the same questions for every method; with a
release, the questions it answers), the benchmark file, and earlier evaluations (the base's).
Writes: `evaluations` (one row per method and seed, and the base's), the fine-tuned models under
`workdir/evaluate/<run_id>/`.
Servers: one vLLM server for the run, started on the base once every fine-tune is done; each
fine-tuned model's weights are swapped into it in turn (`engine: hf` students are sampled in-process).
Raises: StageNotReady without traces for a method; BenchmarkError for a bad benchmark; DivergedError
for a fine-tune whose loss went NaN. A row is written only once its evaluation is whole.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from tessy.config import PipelineConfig
from tessy.engines.base import Engine, Sampling
from tessy.engines.openai import OpenAIEngine
from tessy.engines.servers import SWAP_WEIGHTS_ENV, ServerSpec, serve, swap_weights, swappable
from tessy.errors import ConfigNotReady, StageNotReady
from tessy.evaluation.benchmark import BenchProblem, benchmark_hash, load_benchmark
from tessy.evaluation.passk import Score, interval, pass_at_1
from tessy.evaluation.sft import SFTResult, SFTSettings, finetune, sft_rows
from tessy.hashing import config_hash, sha256_text
from tessy.progress import Report
from tessy.quality.sandbox import find_sandbox
from tessy.runtime import Model, load_model, server_log_dir
from warehouse.db import open_warehouse
from warehouse.evaluations import Evaluation, find_evaluation, save_evaluation
from warehouse.metrics import trace_frame
from warehouse.releases import release_questions

BASE = "base"


@dataclass
class EvaluateOutcome:
    rows: list[Evaluation]
    summary: dict[str, Any]  # {"base": x, method: y, ..., "ci95": {...}, "seeds": n}
    n_train: int
    n_overlap: int  # training questions dropped because the benchmark holds them

    @property
    def stats(self) -> dict[str, Any]:
        """What the evaluate run records in `runs` (the gate and the reports read the summary there)."""
        return {"evaluations": len(self.rows), "train": self.n_train, **self.summary}

    def table(self) -> list[dict[str, Any]]:
        """One row per evaluation, for the CLI's table and the Prefect artifact."""
        return [
            {
                "method": r.method,
                "seed": r.seed,
                "pass@1": round(r.pass_at_1, 4),
                "ci95": r.ci95,
                "n": r.n,
                "train": r.n_train,
            }
            for r in self.rows
        ]


def run(
    cfg: PipelineConfig, run_id: str, report: Report | None = None, release: str | None = None
) -> EvaluateOutcome:
    """Evaluate each method of `evaluate.methods` over this config's traces, or, given a `release`
    name, over the questions that release answers (its rows are recorded with the release's id)."""
    e = cfg.evaluate
    say = report or (lambda _line: None)
    if not (sandbox := find_sandbox()).isolated and not cfg.qa.unsafe_exec:
        raise ConfigNotReady(
            f"evaluate runs the models' code and no sandbox can run here ({sandbox.reason}); install "
            "bubblewrap, or set qa.unsafe_exec on a throwaway machine"
        )
    problems = load_benchmark(e.benchmark, e.max_problems)
    student = load_model(cfg, "student")
    base = Path(student.config.path)
    if not (base / "config.json").is_file():
        raise StageNotReady(f"base student {base} not found: build or download it first")
    release_id = None
    with open_warehouse(cfg.warehouse, read_only=True) as wh:
        frame = trace_frame(wh, cfg, e.methods).filter(pl.col("status") == "ok")
        if release is not None:
            release_id, questions = release_questions(wh, release)
            if not questions:
                raise StageNotReady(f"release {release!r} holds no traces: nothing to fine-tune on")
            frame = frame.filter(pl.col("question_id").is_in(questions))
    pairs, n_overlap = training_pairs(frame, e.methods, problems, e.max_train_rows)
    n_train = len(pairs[e.methods[0]])
    say(f"{len(problems)} benchmark problems, {n_train} training questions per method ({n_overlap} held out)")
    keys = _keys(cfg, base, problems)
    # Every fine-tune first: the scoring server then has the machine (and its accelerator) to itself.
    trained: dict[tuple[str, int], SFTResult] = {}
    for method in e.methods:
        for seed in e.seeds:
            out = cfg.workdir / "evaluate" / run_id / f"{method}-seed{seed}"
            data = sft_rows(student.family, pairs[method])
            trained[method, seed] = t = finetune(
                base, data, out, SFTSettings(**e.finetune.model_dump()), seed
            )
            say(
                f"{method} seed {seed}: fine-tuned on {t.n_rows} traces, loss "
                f"{t.first_loss:.3f} -> {t.final_loss:.3f} in {t.seconds:.0f} s"
            )
    with _scorer(cfg, student, problems, cfg.workdir / "evaluate" / run_id) as score:
        rows = [_base_row(cfg, run_id, student, keys, say, score)]
        for (method, seed), t in trained.items():
            result = score(t.path, seed)
            say(
                f"{method} seed {seed}: pass@1 {result.pass_at_1:.3f} ± {result.ci95:.3f} (n={result.n}), "
                f"thinking closed in {result.closed:.0%}"
            )
            eid = sha256_text(
                f"{run_id}|{keys['base']}|{keys['benchmark']}|{keys['settings']}|{method}|{seed}"
            )
            row = replace(
                _row(eid, run_id, method, seed, cfg, keys, result, t, n_train), release_id=release_id
            )
            with open_warehouse(cfg.warehouse) as wh:
                save_evaluation(wh, row)
            rows.append(row)
    return EvaluateOutcome(rows, summarize(rows, len(e.seeds)), n_train, n_overlap)


def _base_row(
    cfg: PipelineConfig,
    run_id: str,
    student: Model,
    keys: dict[str, str],
    say: Report,
    score: Scorer,
) -> Evaluation:
    """The base student's evaluation: measured once per (weights, benchmark, sampling), then reused."""
    seed = cfg.evaluate.seeds[0]
    eid = sha256_text(f"{keys['base']}|{keys['benchmark']}|{keys['sampling']}|{BASE}|{seed}")
    with open_warehouse(cfg.warehouse, read_only=True) as wh:
        cached = find_evaluation(wh, eid)
    if cached is not None and cached.per_problem:  # older rows lack the per-problem results: measure again
        say(f"base: pass@1 {cached.pass_at_1:.3f} (measured before, run {cached.run_id})")
        return cached
    result = score(Path(student.config.path), seed)
    say(
        f"base: pass@1 {result.pass_at_1:.3f} ± {result.ci95:.3f} (n={result.n}), "
        f"thinking closed in {result.closed:.0%}"
    )
    row = _row(eid, run_id, BASE, seed, cfg, keys, result, None, 0)
    with open_warehouse(cfg.warehouse) as wh:
        save_evaluation(wh, row)
    return row


def training_pairs(
    frame: pl.DataFrame, methods: list[str], problems: list[BenchProblem], limit: int | None
) -> tuple[dict[str, list[tuple[str, str]]], int]:
    """(question, response) pairs per method, over the questions every method has a finished trace
    for (so methods differ only in who wrote the text), minus the benchmark's questions; the number
    of questions dropped for being in the benchmark."""
    held_out = {p.question.strip() for p in problems}
    per_method = {}
    for method in methods:
        rows = frame.filter(pl.col("method") == method)
        if rows.height == 0:
            raise StageNotReady(f"no finished {method} traces for this config: synthesize them first")
        per_method[method] = {
            r["question_id"]: (r["question"], r["text"]) for r in rows.iter_rows(named=True)
        }
    common = sorted(set.intersection(*(set(d) for d in per_method.values())))
    outside = [q for q in common if per_method[methods[0]][q][0].strip() not in held_out]
    if not outside:
        raise StageNotReady(
            f"no question has a finished trace of every method {methods} outside the benchmark"
        )
    kept = outside[:limit] if limit else outside
    return {m: [per_method[m][q] for q in kept] for m in methods}, len(common) - len(outside)


def _keys(cfg: PipelineConfig, base: Path, problems: list[BenchProblem]) -> dict[str, str]:
    e = cfg.evaluate
    sampling = {k: getattr(e, k) for k in ("samples", "max_tokens", "temperature", "top_p", "top_k")}
    return {
        "base": _weights_hash(base),
        "benchmark": benchmark_hash(problems),
        "sampling": config_hash(sampling),
        "settings": config_hash({**sampling, "finetune": e.finetune.model_dump(), "rows": e.max_train_rows}),
    }


def _weights_hash(model_dir: Path) -> str:
    """Content hash of a model's weight files (the name alone says nothing about what was trained)."""
    digest = hashlib.sha256()
    for path in sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("*.bin")):
        with path.open("rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


Scorer = Callable[[Path, int], Score]  # (model dir, seed) -> pass@1 on the benchmark


@contextmanager
def _scorer(
    cfg: PipelineConfig, student: Model, problems: list[BenchProblem], run_dir: Path
) -> Iterator[Scorer]:
    """Scores model dirs of the student's architecture one after another: in-process for an
    `engine: hf` student, else on one vLLM server, started on the base, whose weights are swapped for
    each model's (a fresh server per model cost 30-40 s each here, a swap well under a second).
    Copies a server needs to swap faithfully go to `run_dir`."""
    e = cfg.evaluate
    sampling = Sampling(temperature=e.temperature, top_p=e.top_p, top_k=e.top_k, max_tokens=e.max_tokens)

    async def sample(engine: Engine, seed: int) -> Score:
        return await pass_at_1(
            engine,
            student.family,
            problems,
            k=e.samples,
            sampling=sampling,
            seed=seed,
            concurrency=e.concurrency,
            timeout_s=cfg.qa.timeout_s,
            allow_unsafe=cfg.qa.unsafe_exec,
        )

    if student.config.engine == "hf":
        from tessy.engines.hf import HFEngine

        yield lambda model_dir, seed: asyncio.run(
            sample(HFEngine(str(model_dir), student.tokenizer, name=model_dir.name), seed)
        )
        return
    base = Path(student.config.path)
    extra = [*student.config.extra_args, *cfg.evaluate.server_args]
    served = swappable(base, run_dir / "base-served")
    config = student.config.model_copy(update={"path": str(served), "replicas": 1, "extra_args": extra})
    spec = replace(ServerSpec.from_model_config(config), env=SWAP_WEIGHTS_ENV)
    loaded = base

    async def on_server(urls: list[str], seed: int) -> Score:
        async with OpenAIEngine(urls, model=spec.served_name) as engine:  # its client lives in one loop
            return await sample(engine, seed)

    with serve([spec], log_dir=server_log_dir(cfg)) as endpoints:
        urls = endpoints[spec.served_name]

        def score(model_dir: Path, seed: int) -> Score:
            nonlocal loaded
            if model_dir != loaded:
                swap_weights(urls[0], swappable(model_dir, model_dir.with_name(model_dir.name + "-served")))
                loaded = model_dir
            return asyncio.run(on_server(urls, seed))

        yield score


def _row(
    eid: str,
    run_id: str,
    method: str,
    seed: int,
    cfg: PipelineConfig,
    keys: dict[str, str],
    score: Score,
    trained: SFTResult | None,
    n_train: int,
) -> Evaluation:
    return Evaluation(
        evaluation_id=eid,
        run_id=run_id,
        method=method,
        base_model=cfg.model("student").path,
        base_hash=keys["base"],
        seed=seed,
        benchmark=cfg.evaluate.benchmark,
        benchmark_hash=keys["benchmark"],
        settings_hash=keys["sampling" if method == BASE else "settings"],
        n_train=0 if method == BASE else n_train,
        n=score.n,
        k=score.k,
        pass_at_1=score.pass_at_1,
        ci95=score.ci95,
        train_first_loss=trained.first_loss if trained else None,
        train_final_loss=trained.final_loss if trained else None,
        train_steps=trained.steps if trained else None,
        per_group=score.per_group,
        per_problem=score.per_problem,
        closed=score.closed,
    )


def summarize(rows: list[Evaluation], seeds: int) -> dict[str, Any]:
    """pass@1 per method (the mean over seeds) and its 95% half-width: over the seeds' scores when
    there are several, else the one score's interval over problems. `gain`: each method's gain over
    the base with a paired 95% interval, over the per-problem differences (the method's pass rate on
    a problem, averaged over seeds, minus the base's): every student answers the same problems, so
    this judges the gain far more sharply than the two scores' own intervals do."""
    by_method: dict[str, list[Evaluation]] = {}
    for r in rows:
        by_method.setdefault(r.method, []).append(r)
    out: dict[str, Any] = {}
    ci: dict[str, float | None] = {}
    for method, rs in by_method.items():
        mean, half = interval([r.pass_at_1 for r in rs])
        out[method] = mean
        ci[method] = half if len(rs) > 1 else rs[0].ci95
    base = by_method.get(BASE, [None])[0]
    gain = {}
    for method, rs in by_method.items():
        if method != BASE and base is not None and base.per_problem:
            diffs = [sum(r.per_problem[p] for r in rs) / len(rs) - b for p, b in base.per_problem.items()]
            mean, half = interval(diffs)
            gain[method] = {"mean": mean, "ci95": half}
    return {**out, "ci95": ci, "gain": gain, "seeds": seeds}
