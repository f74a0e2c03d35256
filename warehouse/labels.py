"""Contest-filter labels: which questions still need a decision, storing decisions, and how the
labels compare with the sources' own domains."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl
import pyarrow as pa

from tessy.filtering.heuristic import Decision
from warehouse.db import Warehouse, registered


def pending_questions(
    wh: Warehouse, filter_name: str, filter_version: str, limit: int | None = None
) -> pl.DataFrame:
    """Questions with no decision from this filter version yet; undecided ones are asked again."""
    return wh.frame(
        """
        SELECT q.question_id, q.text FROM questions q
        LEFT JOIN question_labels l ON l.question_id = q.question_id AND l.filter = ? AND l.filter_version = ?
        WHERE l.is_contest IS NULL ORDER BY q.question_id
        """
        + (f" LIMIT {int(limit)}" if limit else ""),
        [filter_name, filter_version],
    )


def save_labels(
    wh: Warehouse, question_ids: Sequence[str], decisions: Sequence[Decision], run_id: str
) -> None:
    table = pa.table(
        {
            "question_id": list(question_ids),
            "filter": [d.filter for d in decisions],
            "filter_version": [d.filter_version for d in decisions],
            "is_contest": pa.array([d.is_contest for d in decisions], pa.bool_()),
            "score": pa.array([d.score for d in decisions], pa.float64()),
            "rationale": [d.rationale for d in decisions],
            "run_id": [run_id] * len(decisions),
        }
    )
    with registered(wh.con, "_labels", table):
        # A label written again gets a new place in the order (`seq`): planning reads the labels after
        # the place it got to (`plan_marks`).
        wh.con.execute("INSERT OR REPLACE INTO question_labels SELECT *, nextval('label_seq') FROM _labels")


def label_summary(wh: Warehouse, filter_version: str) -> dict[str, Any]:
    """Labels per class, and how often decided labels agree with the source's own domain where it
    has one (`code` = contest): a check of the judge against ground truth when the data carries it."""
    row = wh.con.execute(
        """
        SELECT count(*) FILTER (l.is_contest), count(*) FILTER (NOT l.is_contest),
               count(*) FILTER (l.is_contest IS NULL),
               count(*) FILTER (l.is_contest IS NOT NULL AND q.domain IS NOT NULL),
               avg(CASE WHEN q.domain IS NOT NULL THEN (l.is_contest = (q.domain = 'code'))::INT END)
        FROM question_labels l JOIN questions q USING (question_id) WHERE l.filter_version = ?
        """,
        [filter_version],
    ).fetchall()[0]
    return {
        "contest": row[0],
        "not_contest": row[1],
        "undecided": row[2],
        "with_domain": row[3],
        "domain_agreement": row[4],
    }
