"""Predictors: each role's boundary predictor, trained when stale.

Reads: `predictors` (is one registered with this id: same models, base and settings?) and, to train,
the contest questions the filter selected (`questions` x `question_labels`).
Writes: `predictors` (id, role, base, training rows, metrics, path) and the predictor's directory
under `workdir/predictors/<id>/`.
Servers: to train, the role's model (it answers questions, and its thinking is the training text);
also the annotator's model for `predictors.annotator: llm`. None when both are up to date.
Raises: StageNotReady when fewer than two contest questions are there to sample from, or (to
evaluate) when no predictor is registered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tessy.boundary.annotate import annotate_llm
from tessy.boundary.base import make_base
from tessy.boundary.evaluate import evaluate as score_predictor
from tessy.boundary.evaluate import gold_windows
from tessy.boundary.lexicon import GENERAL, MICROWORLD
from tessy.boundary.segments import sample_segments
from tessy.boundary.train import TrainConfig, data_hash, train
from tessy.boundary.windows import Window, mixed_windows
from tessy.config import PipelineConfig
from tessy.engines.base import Sampling
from tessy.errors import StageNotReady
from tessy.filtering.judges import filter_identity
from tessy.hashing import config_hash
from tessy.runtime import ROLES, Endpoints, Model, load_model, model_endpoints
from warehouse.db import open_warehouse
from warehouse.predictors import (
    find_predictors,
    latest_predictors,
    predictor_metrics,
    register_predictor,
)
from warehouse.traces import questions_to_synthesize

GOLD_PROBLEMS = 40  # held-out microworld problems per role that a new predictor is scored on


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


def run(
    cfg: PipelineConfig,
    run_id: str,
    *,
    force: bool = False,
    endpoints: Endpoints | None = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Train (and register) each role's predictor unless one with the same id is registered already
    (`force` retrains). Returns per role: id, path, whether it was trained, metrics. Without
    `endpoints`, the servers a training needs are started for it."""
    ids = {role: predictor_id(cfg, role) for role in ROLES}
    with open_warehouse(cfg.warehouse) as wh:
        existing = {} if force else find_predictors(wh, ids)
        stale = [role for role in ids if role not in existing]
        questions = questions_to_synthesize(wh, *filter_identity(cfg))["text"].to_list() if stale else []
        known = {role: predictor_metrics(wh, ref.predictor_id) for role, ref in existing.items()}
    if stale and len(questions) < 2:
        raise StageNotReady("too few contest questions to sample segments from: run ingest and filter first")
    out = {
        role: {"predictor_id": ref.predictor_id, "path": ref.path, "trained": False, "metrics": known[role]}
        for role, ref in existing.items()
    }
    if not stale:
        return out
    # Mixed windows splice each role's text with the other's, so both roles answer when one is stale.
    sampled = [*ROLES] if cfg.predictors.mixed_share > 0 else stale
    annotator = [cfg.predictors.annotator_model] if cfg.predictors.annotator == "llm" else []
    with model_endpoints(cfg, tuple(dict.fromkeys([*sampled, *annotator])), endpoints) as running:
        texts = asyncio.run(collect_roles(cfg, sampled, questions, running))
        for role in stale:
            other = [w for r, t in texts.items() if r != role for w in t.annotated]
            trained = train_role(cfg, role, texts[role], other, progress=progress)
            with open_warehouse(cfg.warehouse) as wh:
                register_predictor(
                    wh,
                    trained.predictor_id,
                    role,
                    trained.base_model,
                    trained.train_rows,
                    trained.data_hash,
                    trained.metrics,
                    str(trained.path),
                    run_id,
                )
            out[role] = {
                "predictor_id": trained.predictor_id,
                "path": str(trained.path),
                "trained": True,
                "metrics": trained.metrics,
            }
    return out


@dataclass
class Texts:
    """One role's thinking, cut into windows, and the windows its annotator labelled."""

    sampled: list[Window]
    annotated: list[Window]
    dropped: dict[str, int]  # windows the annotator gave no labels for, per reason


async def collect(cfg: PipelineConfig, role: str, questions: list[str], endpoints: Endpoints) -> Texts:
    """The role's model answers `questions`; windows of its thinking are annotated with style spans."""
    sampled = await _segments(cfg, load_model(cfg, role, endpoints), questions)
    annotated, dropped = await _annotate(cfg, role, sampled, endpoints)
    return Texts(sampled, annotated, dropped)


async def collect_roles(
    cfg: PipelineConfig, roles: list[str], questions: list[str], endpoints: Endpoints
) -> dict[str, Texts]:
    """`collect` for each role at once: each role's model is its own server."""
    texts = await asyncio.gather(*(collect(cfg, role, questions, endpoints) for role in roles))
    return dict(zip(roles, texts, strict=True))


def train_role(
    cfg: PipelineConfig, role: str, own: Texts, other: list[Window], *, progress: bool = True
) -> TrainedPredictor:
    """Training and evaluation of one role's predictor: a token classifier is trained from the base on
    the role's annotated windows plus `predictors.mixed_share` as many spliced with the other role's
    (`other`), and (on the microworld) scored against the generator's known spans, on pure and on
    mixed-voice windows."""
    p = cfg.predictors
    pid = predictor_id(cfg, role)
    out = cfg.workdir / "predictors" / pid
    mixed = mixed_windows(own.annotated, other, round(p.mixed_share * len(own.annotated)), p.seed)
    windows = own.annotated + mixed
    base = make_base(base_model(cfg), cfg.workdir / "predictors" / f"base-{pid}", num_layers=p.base_layers)
    result = train(base, windows, out, TrainConfig(**p.train.model_dump(), seed=p.seed), progress=progress)
    metrics: dict[str, Any] = {
        "validation": result.metrics["best"],
        "segments": len(own.sampled),
        "annotated": len(own.annotated),
        "mixed": len(mixed),
        "dropped": own.dropped,
    }
    if p.ground_truth == "microworld":
        metrics["ground_truth"] = _score(cfg, out, role, GOLD_PROBLEMS, mixed=False)
        metrics["ground_truth_mixed"] = _score(cfg, out, role, GOLD_PROBLEMS, mixed=True)
    return TrainedPredictor(role, pid, out, base_model(cfg), len(windows), data_hash(windows), metrics)


def evaluate(cfg: PipelineConfig, problems: int = GOLD_PROBLEMS) -> dict[str, dict[str, dict[str, float]]]:
    """Score the latest registered predictors against the microworld's ground-truth style spans, on
    `problems` held-out problems per role: role -> "pure" (the role's own voice) or "mixed" (each
    step in either voice) -> scores."""
    with open_warehouse(cfg.warehouse, read_only=True) as wh:
        refs = latest_predictors(wh)
    if not refs:
        raise StageNotReady("no predictors registered: run `tessy predictors train` first")
    keys = ("style_f1", "boundary_f1", "accuracy", "precision", "recall")
    report = {}
    for role, ref in sorted(refs.items(), reverse=True):
        report[role] = {}
        for windows, mixed in (("pure", False), ("mixed", True)):
            scores = _score(cfg, ref.path, role, problems, mixed=mixed)
            report[role][windows] = {k: round(scores[k], 4) for k in keys}
    return report


def _score(cfg: PipelineConfig, path: str | Path, role: str, problems: int, *, mixed: bool) -> dict:
    """The predictor at `path` scored against the known style spans of held-out microworld traces in the
    role's voice (`mixed`: each step in either voice, as TESSY writes)."""
    p = cfg.predictors
    gold = gold_windows(role, problems, p.window_words, p.windows_per_response, seed=p.seed + 1, mixed=mixed)
    return score_predictor(path, gold, max_tokens=p.train.max_tokens, device=p.train.device)


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


async def _annotate(cfg: PipelineConfig, role: str, windows: list[Window], endpoints: Endpoints):
    p = cfg.predictors
    if p.annotator == "lexicon":
        lexicon = MICROWORLD[role] if p.lexicon == "microworld" else GENERAL
        return lexicon.annotate(windows), {}
    annotator = load_model(cfg, p.annotator_model, endpoints)
    annotation = await annotate_llm(
        annotator.engine,
        windows,
        params=Sampling(max_tokens=512),
        render=lambda prompt: annotator.family.answer_prompt(prompt, ""),
    )
    return annotation.windows, dict(annotation.dropped)
