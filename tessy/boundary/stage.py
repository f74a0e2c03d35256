"""The predictors stage for one role: sample thinking segments from the role's model, annotate style
spans, train a token classifier from the base, and score it — on the microworld against the
generator's known spans, not against the annotator."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import Any

from tessy.boundary.annotate import annotate_llm
from tessy.boundary.base import make_base
from tessy.boundary.evaluate import evaluate
from tessy.boundary.lexicon import GENERAL, MICROWORLD
from tessy.boundary.segments import sample_segments
from tessy.boundary.train import TrainConfig, data_hash, train
from tessy.boundary.windows import Window, cut_windows
from tessy.config import PipelineConfig
from tessy.engines.base import Sampling
from tessy.hashing import config_hash
from tessy.runtime import Model, load_model


@dataclass
class TrainedPredictor:
    role: str
    predictor_id: str
    path: Path
    base_model: str
    train_rows: int
    data_hash: str
    metrics: dict[str, Any]


def base_model(cfg: PipelineConfig) -> str:
    return cfg.predictors.base or cfg.model("student").path


def predictor_id(cfg: PipelineConfig, role: str) -> str:
    """Changes when the role's model, the base or the predictor settings change: then it retrains."""
    return config_hash(
        {
            "role": role,
            "model": cfg.model(role).path,
            "base": base_model(cfg),
            "predictors": cfg.predictors.model_dump(),
        }
    )


def gold_windows(
    role: str, n_problems: int, words: int, per_response: int, seed: int, split: str = "eval"
) -> list[Window]:
    """Microworld traces in the role's style, windows labelled with the generator's style spans."""
    from tessy.microworld.problems import generate_problems
    from tessy.microworld.traces import make_trace

    rng = Random(seed)
    windows = []
    for problem in generate_problems(n_problems, seed=seed, split=split):
        trace = make_trace(problem, role, rng)
        windows += cut_windows(
            trace.thinking, words=words, per_response=per_response, seed=seed, spans=trace.style_spans
        )
    return windows


async def _segments(cfg: PipelineConfig, model: Model, questions: list[str]) -> list[Window]:
    p = cfg.predictors
    sample = await sample_segments(
        model.engine,
        [model.family.thinking_prompt(q) for q in questions],
        params=Sampling(max_tokens=p.max_response_tokens),
        split_thinking=lambda text: model.family.split_thinking(text)[0],
        n_responses=p.questions,
        words=p.window_words,
        per_response=p.windows_per_response,
        seed=p.seed,
    )
    if len(sample.windows) < 2:
        raise RuntimeError(
            f"{model.role}: too few segments ({len(sample.windows)}); failures {dict(sample.failures)}"
        )
    return sample.windows


async def _annotate(cfg: PipelineConfig, role: str, windows: list[Window], endpoints: dict[str, list[str]]):
    p = cfg.predictors
    if p.annotator == "lexicon":
        lexicon = MICROWORLD[role] if p.lexicon == "microworld" else GENERAL
        return lexicon.annotate(windows), {}
    judge = load_model(cfg, p.annotator_model, endpoints)
    annotation = await annotate_llm(
        judge.engine,
        windows,
        params=Sampling(max_tokens=512),
        render=lambda prompt: judge.family.answer_prompt(prompt, ""),
    )
    return annotation.windows, dict(annotation.dropped)


def train_role(
    cfg: PipelineConfig,
    role: str,
    questions: list[str],
    endpoints: dict[str, list[str]],
    *,
    progress: bool = True,
) -> TrainedPredictor:
    """Segments -> annotation -> training -> evaluation for one role's predictor."""
    p = cfg.predictors
    pid = predictor_id(cfg, role)
    out = cfg.workdir / "predictors" / pid
    model = load_model(cfg, role, endpoints)

    async def collect():
        windows = await _segments(cfg, model, questions)
        return windows, *(await _annotate(cfg, role, windows, endpoints))

    sampled, annotated, dropped = asyncio.run(collect())
    base = make_base(base_model(cfg), cfg.workdir / "predictors" / f"base-{pid}", num_layers=p.base_layers)
    train_cfg = TrainConfig(**p.train.model_dump(), seed=p.seed)
    result = train(base, annotated, out, train_cfg, progress=progress)
    metrics: dict[str, Any] = {
        "validation": result.metrics["best"],
        "segments": len(sampled),
        "annotated": len(annotated),
        "dropped": dropped,
    }
    if p.ground_truth == "microworld":
        gold = gold_windows(role, 40, p.window_words, p.windows_per_response, seed=p.seed + 1)
        metrics["ground_truth"] = evaluate(out, gold, max_tokens=p.train.max_tokens, device=p.train.device)
    return TrainedPredictor(role, pid, out, base_model(cfg), len(annotated), data_hash(annotated), metrics)
