"""Evaluations: held-out pass@1 of the student fine-tuned on each method's traces, and of its base."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from warehouse.db import Warehouse


@dataclass(frozen=True)
class Evaluation:
    evaluation_id: str
    run_id: str
    method: str
    base_model: str
    base_hash: str
    seed: int
    benchmark: str
    benchmark_hash: str
    settings_hash: str
    n_train: int
    n: int
    k: int
    pass_at_1: float
    ci95: float | None
    train_first_loss: float | None = None
    train_final_loss: float | None = None
    train_steps: int | None = None
    per_group: dict[str, float] = field(default_factory=dict)
    release_id: str | None = None
    per_problem: dict[str, float] = field(default_factory=dict)  # problem id -> share of k passed
    closed: float | None = None  # share of responses whose thinking ended within the token budget


_JSON = ("per_group", "per_problem")  # stored as <name>_json
_COLUMNS = [f for f in Evaluation.__dataclass_fields__ if f not in _JSON]


def save_evaluation(wh: Warehouse, e: Evaluation) -> None:
    """Store one evaluation (replacing an earlier one with the same id: same inputs, same result)."""
    row = asdict(e)
    names = [*_COLUMNS, *(f"{j}_json" for j in _JSON), "created_at"]
    values = [row[c] for c in _COLUMNS] + [
        *(json.dumps(row[j], sort_keys=True) for j in _JSON),
        datetime.now(UTC).replace(tzinfo=None),
    ]
    wh.con.execute(
        f"INSERT OR REPLACE INTO evaluations ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
        values,
    )


def find_evaluation(wh: Warehouse, evaluation_id: str) -> Evaluation | None:
    frame = wh.frame("SELECT * FROM evaluations WHERE evaluation_id = ?", [evaluation_id])
    if frame.height == 0:
        return None
    row: dict[str, Any] = frame.row(0, named=True)
    return Evaluation(
        **{c: row[c] for c in _COLUMNS}, **{j: json.loads(row[f"{j}_json"] or "{}") for j in _JSON}
    )


def latest_evaluation(wh: Warehouse, since: datetime | None = None) -> dict[str, Any] | None:
    """The summary (`{"base": x, method: y, ..., "ci95": {...}}`) with its `run_id` of the newest
    evaluate run that finished (and started at or after `since`, when given); None when there is none."""
    row = wh.frame(
        "SELECT run_id, stats_json FROM runs WHERE kind = 'evaluate' AND status = 'completed'"
        " AND started_at >= coalesce(?, started_at) ORDER BY started_at DESC LIMIT 1",
        [since],
    )
    return {"run_id": row["run_id"][0], **json.loads(row["stats_json"][0])} if row.height else None
