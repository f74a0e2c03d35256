"""Filter: label questions as programming contests or not.

Reads: `questions` with no decision yet from this judge version (`filter_identity`); undecided ones
(an unparseable verdict, a rejected request) are asked again.
Writes: `question_labels` (one row per question and judge version, with the rationale).
Servers: the judge's model (`filter.model`) for `filter.judge: llm`; none for the heuristic.
Raises: ConfigError when an LLM judge names no models.
"""

from __future__ import annotations

from typing import Any

from tessy.config import PipelineConfig
from tessy.filtering.judges import Judge, filter_identity, heuristic_judge, llm_judge
from tessy.filtering.llm import JudgeConfig
from tessy.runtime import Endpoints, load_model, model_endpoints
from warehouse.db import open_warehouse
from warehouse.labels import label_summary, pending_questions, save_labels


def judge_roles(cfg: PipelineConfig) -> tuple[str, ...]:
    """The roles whose models the filter needs running."""
    return (cfg.filter.model,) if cfg.filter.judge == "llm" else ()


def build_judge(cfg: PipelineConfig, endpoints: Endpoints | None = None) -> Judge:
    """The contest judge the config asks for, on the role's model for `llm`."""
    if cfg.filter.judge == "heuristic":
        return heuristic_judge()
    model = load_model(cfg, cfg.filter.model, endpoints)
    config = JudgeConfig(attempts=cfg.filter.attempts, concurrency=cfg.filter.concurrency)
    return llm_judge(model.engine, model.family, filter_identity(cfg)[1], config)


def run(
    cfg: PipelineConfig,
    run_id: str,
    *,
    endpoints: Endpoints | None = None,
    judge: Judge | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Judge every pending question and store the decisions; returns how many were judged and the
    label counts. `judge` replaces the config's; without `endpoints`, the judge's servers are started
    for the block when there is something to judge. The warehouse is held only to read the pending
    questions and to write the labels, not while the judge runs."""
    name, version = (judge.name, judge.version) if judge else filter_identity(cfg)
    with open_warehouse(cfg.warehouse) as wh:
        pending = pending_questions(wh, name, version, limit)
    decisions = []
    if pending.height:
        with model_endpoints(cfg, judge_roles(cfg) if judge is None else (), endpoints) as running:
            decisions = (judge or build_judge(cfg, running)).decide(pending["text"].to_list())
    with open_warehouse(cfg.warehouse) as wh:
        save_labels(wh, pending["question_id"].to_list(), decisions, run_id)
        return {"judged": pending.height, **label_summary(wh, version)}
