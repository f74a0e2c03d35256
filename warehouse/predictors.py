"""The boundary-predictor registry: which predictor each role uses, and whether it is stale."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tessy.config import PipelineConfig
from tessy.runtime import PredictorRef
from warehouse.db import Warehouse, open_warehouse
from warehouse.traces import questions_to_synthesize


def register_predictor(
    wh: Warehouse,
    predictor_id: str,
    role: str,
    base_model: str,
    train_rows: int,
    data_hash: str,
    metrics: dict[str, Any],
    path: str,
    run_id: str,
) -> None:
    wh.con.execute(
        "INSERT OR REPLACE INTO predictors VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            predictor_id,
            role,
            base_model,
            train_rows,
            data_hash,
            json.dumps(metrics, sort_keys=True),
            path,
            run_id,
            datetime.now(UTC).replace(tzinfo=None),
        ],
    )


def find_predictors(wh: Warehouse, predictor_ids: dict[str, str]) -> dict[str, PredictorRef]:
    """The registered predictors with the given ids (role -> id); roles not registered are left out."""
    found = {}
    for role, pid in predictor_ids.items():
        path = wh.scalar("SELECT path FROM predictors WHERE predictor_id = ? AND role = ?", [pid, role])
        if path:
            found[role] = PredictorRef(pid, path)
    return found


def latest_predictors(wh: Warehouse) -> dict[str, PredictorRef]:
    """The most recently trained predictor of each role."""
    rows = wh.frame(
        "SELECT role, predictor_id, path FROM predictors QUALIFY row_number() OVER"
        " (PARTITION BY role ORDER BY created_at DESC) = 1"
    ).to_dicts()
    return {r["role"]: PredictorRef(r["predictor_id"], r["path"]) for r in rows}


def predictors_for(wh: Warehouse, methods: list[str]) -> dict[str, PredictorRef]:
    """The predictors synthesis needs: both roles' latest for TESSY, none for the baselines."""
    if "tessy" not in methods:
        return {}
    predictors = latest_predictors(wh)
    if set(predictors) != {"student", "teacher"}:
        raise RuntimeError("TESSY needs a predictor for both roles: run `tessy predictors train` first")
    return predictors


def ensure_predictors(
    cfg: PipelineConfig,
    run_id: str,
    *,
    force: bool = False,
    progress: bool = True,
    endpoints: dict[str, list[str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Train (and register) each role's predictor unless one with the same id — same models, base and
    settings — is registered already. Returns per role: id, path, whether it was trained, metrics."""
    from tessy.boundary.stage import predictor_id, train_role
    from tessy.runtime import filter_identity, model_endpoints

    ids = {role: predictor_id(cfg, role) for role in ("student", "teacher")}
    with open_warehouse(cfg.warehouse) as wh:
        existing = {} if force else find_predictors(wh, ids)
        stale = [role for role in ids if role not in existing]
        questions = questions_to_synthesize(wh, *filter_identity(cfg))["text"].to_list() if stale else []
        known = {
            role: json.loads(
                wh.scalar("SELECT metrics_json FROM predictors WHERE predictor_id = ?", [ref.predictor_id])
            )
            for role, ref in existing.items()
        }
    if stale and len(questions) < 2:
        raise RuntimeError("too few contest questions to sample segments from: run ingest and filter first")
    out = {
        role: {"predictor_id": ref.predictor_id, "path": ref.path, "trained": False, "metrics": known[role]}
        for role, ref in existing.items()
    }
    if not stale:
        return out
    roles = tuple(
        dict.fromkeys(
            [*stale, *([cfg.predictors.annotator_model] if cfg.predictors.annotator == "llm" else [])]
        )
    )
    with model_endpoints(cfg, roles, endpoints) as running:
        for role in stale:
            trained = train_role(cfg, role, questions, running, progress=progress)
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
