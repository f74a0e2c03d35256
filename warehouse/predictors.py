"""The boundary-predictor registry: which predictors were trained, for which role, from what."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from warehouse.db import Warehouse


@dataclass(frozen=True)
class PredictorRef:
    """A registered predictor: its id (a hash of what it was trained from) and its directory."""

    predictor_id: str
    path: str


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


def predictor_metrics(wh: Warehouse, predictor_id: str) -> dict[str, Any]:
    return json.loads(wh.scalar("SELECT metrics_json FROM predictors WHERE predictor_id = ?", [predictor_id]))


def latest_predictors(wh: Warehouse) -> dict[str, PredictorRef]:
    """The most recently trained predictor of each role."""
    rows = wh.frame(
        "SELECT role, predictor_id, path FROM predictors QUALIFY row_number() OVER"
        " (PARTITION BY role ORDER BY created_at DESC) = 1"
    ).to_dicts()
    return {r["role"]: PredictorRef(r["predictor_id"], r["path"]) for r in rows}
