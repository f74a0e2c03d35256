"""Releases: immutable rows (a release and the traces it holds, never updated), their candidates,
names, diffs and Hub publications."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pyarrow as pa

from tessy.config import PipelineConfig
from tessy.errors import ReleaseNameError
from warehouse.db import Warehouse, registered, transaction
from warehouse.metrics import TEST_CASES

# QA's newest `solved` of each trace (1 when its answer passes all its question's tests): run ids
# start with their time, so the greatest is the newest. A trace whose question has no tests, or
# whose code never ran, has none.
_SOLVED = """
    SELECT subject_id AS trace_id, arg_max(value, run_id) AS solved
    FROM qa_metrics WHERE metric = 'solved' GROUP BY subject_id
"""


_CANDIDATES = f"""
    SELECT t.trace_id, t.question_id, t.method, t.run_id, t.status, t.attempts, t.predictor_ids,
           t.n_tokens, t.n_tokens_teacher, t.n_tokens_student, t.n_switches, t.n_wasted_tokens, s.solved
    FROM traces t LEFT JOIN ({_SOLVED}) s USING (trace_id)
    WHERE t.student_model = $student AND t.teacher_model = $teacher AND t.status = 'ok'
        AND t.method IN (SELECT unnest($methods))
        AND t.question_id IN (SELECT question_id FROM questions)
        AND t.trace_id IN (
            SELECT subject_id FROM qa_metrics WHERE metric = 'answer_present' AND value = 1
        )
    QUALIFY row_number() OVER (
        PARTITION BY t.question_id, t.method ORDER BY t.run_id DESC, t.trace_id DESC
    ) = 1
    ORDER BY t.trace_id
"""


def candidate_frame(wh: Warehouse, cfg: PipelineConfig) -> pl.DataFrame:
    """This config's traces of the released methods that passed QA (finished, with an answer), with
    QA's newest `solved` of each (null where none was measured), in trace_id order; of a question's
    traces of one method, the newest run's only. A night after new predictors (or new synthesis
    settings) makes new traces of questions that have one already: the release holds each question's
    answer once. Narrow: ids, status and counts, no text (see `release_batches`)."""
    return wh.frame(
        _CANDIDATES,
        {
            "student": cfg.model("student").name_on_server,
            "teacher": cfg.model("teacher").name_on_server,
            "methods": cfg.release.methods,
        },
    )


def _by_batch(wh: Warehouse, key: str, ids: list[str], sql: str, batch_rows: int) -> Iterator[pl.DataFrame]:
    """`sql` once per batch of `ids`, visible to it as table `_batch` with column `key`."""
    for start in range(0, len(ids), batch_rows):
        batch = pa.table({key: pa.array(ids[start : start + batch_rows], pa.string())})
        with registered(wh.con, "_batch", batch):
            rows = wh.frame(sql)
        yield rows


def question_tests(wh: Warehouse, question_ids: list[str], batch_rows: int = 2_000) -> Iterator[pl.DataFrame]:
    """(question_id, test_cases) of the questions, `batch_rows` at a time: tests can be large."""
    sql = f"SELECT q.question_id, {TEST_CASES} FROM questions q SEMI JOIN _batch USING (question_id)"
    return _by_batch(wh, "question_id", sorted(set(question_ids)), sql, batch_rows)


def release_batches(
    wh: Warehouse, trace_ids: list[str], columns: list[str], batch_rows: int = 2_000
) -> Iterator[pl.DataFrame]:
    """The traces' rows (`columns` of a trace, `question` and `test_cases`) in trace_id order, which
    `trace_ids` must be in, `batch_rows` at a time: one query per batch, so no more than a batch of
    text is held at once, however large the release."""
    wanted = [f"t.{c}" for c in columns if c not in ("question", "test_cases")]
    sql = (
        f"SELECT {', '.join(wanted)}, q.text AS question, {TEST_CASES}"
        " FROM traces t JOIN questions q USING (question_id) SEMI JOIN _batch USING (trace_id)"
        " ORDER BY t.trace_id"
    )
    return _by_batch(wh, "trace_id", trace_ids, sql, batch_rows)


def solved_rates(wh: Warehouse, cfg: PipelineConfig, methods: list[str]) -> pl.DataFrame:
    """(method, n_questions, solved_rate) of `methods` over the questions on which every one of them
    has a finished trace of this config's models with QA's `solved` measured; no rows when none is
    shared. Failed traces are not measured, so they count in QA's failure rate, not here."""
    return wh.frame(
        f"""
        WITH measured AS (
            SELECT t.question_id, t.method, s.solved
            FROM traces t JOIN ({_SOLVED}) s USING (trace_id)
            WHERE t.student_model = ? AND t.teacher_model = ? AND t.status = 'ok'
              AND t.method IN (SELECT unnest(?))
        ),
        shared AS (
            SELECT question_id FROM measured GROUP BY question_id HAVING count(DISTINCT method) = ?
        )
        SELECT method, count(DISTINCT question_id) AS n_questions, avg(solved) AS solved_rate
        FROM measured SEMI JOIN shared USING (question_id)
        GROUP BY method ORDER BY method
        """,
        [
            cfg.model("student").name_on_server,
            cfg.model("teacher").name_on_server,
            methods,
            len(set(methods)),
        ],
    )


def release_exists(wh: Warehouse, name: str) -> bool:
    return bool(wh.scalar("SELECT count(*) FROM releases WHERE name = ?", [name]))


def newest_release(wh: Warehouse) -> tuple[str | None, str | None]:
    """(release id, content hash) of the newest release; (None, None) before the first."""
    rows = wh.con.execute(
        "SELECT release_id, content_hash FROM releases ORDER BY created_at DESC LIMIT 1"
    ).fetchall()
    return rows[0] if rows else (None, None)


def insert_release(
    wh: Warehouse,
    release_id: str,
    name: str,
    parent: str | None,
    n_rows: int,
    content_hash: str,
    manifest: dict[str, Any],
    trace_ids: list[str],
) -> None:
    """The release row and its items, in one transaction."""
    items = pl.DataFrame({"release_id": [release_id] * len(trace_ids), "trace_id": trace_ids}).to_arrow()
    with registered(wh.con, "_items", items), transaction(wh.con):
        wh.con.execute(
            "INSERT INTO releases VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
            [
                release_id,
                name,
                parent,
                datetime.now(UTC).replace(tzinfo=None),
                n_rows,
                content_hash,
                json.dumps(manifest, sort_keys=True, default=str),
            ],
        )
        wh.con.execute("INSERT INTO release_items SELECT release_id, trace_id FROM _items")


def release_record(wh: Warehouse, name: str) -> tuple[str, str, dict[str, Any]]:
    """(release id, content hash, manifest) of release `name`."""
    rows = wh.con.execute(
        "SELECT release_id, content_hash, manifest_json FROM releases WHERE name = ?", [name]
    ).fetchall()
    if not rows:
        raise ReleaseNameError(f"no release named {name!r}")
    release_id, content_hash, manifest = rows[0]
    return release_id, content_hash, json.loads(manifest)


def next_release_name(wh: Warehouse, prefix: str) -> str:
    """`{prefix}-{YYYYMMDD}-{n}`: the n-th release of the day."""
    day = f"{prefix}-{datetime.now(UTC):%Y%m%d}"
    n = wh.scalar("SELECT count(*) FROM releases WHERE name LIKE ? || '-%'", [day])
    return f"{day}-{n + 1}"


def diff_releases(wh: Warehouse, a: str, b: str) -> dict[str, Any]:
    """What changed from release `a` to release `b`: traces added and removed, per method."""
    ids = {name: release_record(wh, name)[0] for name in (a, b)}
    rows = wh.frame(
        """
        WITH items AS (
            SELECT trace_id, bool_or(release_id = ?) AS in_a, bool_or(release_id = ?) AS in_b
            FROM release_items GROUP BY trace_id
        )
        SELECT t.method,
               count(*) FILTER (WHERE in_b AND NOT in_a) AS added,
               count(*) FILTER (WHERE in_a AND NOT in_b) AS removed,
               count(*) FILTER (WHERE in_a AND in_b) AS kept
        FROM items JOIN traces t USING (trace_id) WHERE in_a OR in_b
        GROUP BY t.method ORDER BY t.method
        """,
        [ids[a], ids[b]],
    ).to_dicts()
    hashes = dict(
        wh.con.execute("SELECT name, content_hash FROM releases WHERE name IN (?, ?)", [a, b]).fetchall()
    )
    return {"from": a, "to": b, "same_content": hashes[a] == hashes[b], "by_method": rows}


def record_publication(wh: Warehouse, release_id: str, repo_id: str, revision: str, tag: str) -> None:
    wh.con.execute(
        "INSERT OR REPLACE INTO release_publications VALUES (?, ?, ?, ?, ?)",
        [release_id, repo_id, revision, tag, datetime.now(UTC).replace(tzinfo=None)],
    )


def unpublished(wh: Warehouse, repo_id: str) -> list[str]:
    """Releases not yet published to `repo_id`, oldest first: a failed upload is retried next night."""
    rows = wh.con.execute(
        "SELECT name FROM releases r WHERE NOT EXISTS (SELECT 1 FROM release_publications p"
        " WHERE p.release_id = r.release_id AND p.hub_repo = ?) ORDER BY created_at",
        [repo_id],
    ).fetchall()
    return [r[0] for r in rows]


def release_questions(wh: Warehouse, name: str) -> tuple[str, set[str]]:
    """(release id, the ids of the questions its traces answer) of release `name`."""
    release_id = wh.scalar("SELECT release_id FROM releases WHERE name = ?", [name])
    if release_id is None:
        raise ReleaseNameError(f"no release named {name!r}")
    rows = wh.frame(
        "SELECT DISTINCT t.question_id FROM release_items r JOIN traces t USING (trace_id)"
        " WHERE r.release_id = ?",
        [release_id],
    )
    return release_id, set(rows["question_id"])
