"""Traces and spans: the questions to synthesize, what is done already, loading trace shards
(idempotent), and what a synthesis run made."""

from __future__ import annotations

import duckdb
import polars as pl
import pyarrow as pa

from tessy.sources.records import Quarantined
from tessy.storage import Folder
from tessy.synthesis.shards import QUARANTINE, archive_shards, read_shards
from warehouse.db import Warehouse, registered, transaction
from warehouse.questions import add_quarantine


def questions_to_synthesize(
    wh: Warehouse, filter_name: str, filter_version: str, limit: int | None = None
) -> pl.DataFrame:
    """Questions the filter judged to be contests, oldest id first."""
    return wh.frame(
        "SELECT q.question_id, q.text FROM questions q JOIN question_labels l USING (question_id)"
        " WHERE l.filter = ? AND l.filter_version = ? AND l.is_contest ORDER BY q.question_id"
        + (f" LIMIT {int(limit)}" if limit else ""),
        [filter_name, filter_version],
    )


def jobs_to_synthesize(
    wh: Warehouse,
    filter_name: str,
    filter_version: str,
    recipes: list[tuple[str, str, str]],
    retry_failed: int,
    limit: int | None = None,
) -> pl.DataFrame:
    """(trace_id, question_id, question, method) for each contest question and method with no
    finished trace, question by question in id order, methods as listed; a failed trace counts as not
    done on up to `retry_failed` later nights; at most `limit` questions. `recipes`: per method,
    (method, prefix, suffix) with trace_id = sha256(prefix || question_id || suffix). All in DuckDB:
    neither the history of traces nor the questions already done come into memory."""
    recipe = pa.table(
        {
            "method": [r[0] for r in recipes],
            "prefix": [r[1] for r in recipes],
            "suffix": [r[2] for r in recipes],
            "method_order": list(range(len(recipes))),
        }
    )
    limit_clause = f"LIMIT {int(limit)}" if limit is not None else ""
    with registered(wh.con, "_recipes", recipe):
        return wh.frame(
            f"""
            WITH candidates AS (
                SELECT l.question_id, r.method, r.method_order,
                       sha256(r.prefix || l.question_id || r.suffix) AS trace_id
                FROM question_labels l CROSS JOIN _recipes r
                WHERE l.filter = ? AND l.filter_version = ? AND l.is_contest
            ), todo AS (
                SELECT c.* FROM candidates c
                ANTI JOIN (SELECT trace_id FROM traces WHERE status = 'ok' OR nights > ?) t USING (trace_id)
            ), first AS (
                SELECT DISTINCT question_id FROM todo ORDER BY question_id {limit_clause}
            )
            SELECT t.trace_id, t.question_id, q.text AS question, t.method
            FROM todo t JOIN first USING (question_id) JOIN questions q USING (question_id)
            ORDER BY t.question_id, t.method_order
            """,
            [filter_name, filter_version, retry_failed],
        )


def load_shards(wh: Warehouse, folder: Folder, run_id: str) -> dict[str, int]:
    """Move the traces and spans of the shards in `folder` into the warehouse, then the shards into
    `loaded/`: a night reads only its own shards, and a resumed run skips only what it wrote itself.
    A trace that failed before is replaced by its new attempt (its `nights` counted); a finished one
    is never touched. The ledger makes loading a shard twice change nothing. A shard that cannot be
    read as traces goes to `quarantine/` with a `quarantine` row saying why; the others load."""
    con = wh.con
    loaded = {row[0] for row in con.execute("SELECT path FROM shard_ledger").fetchall()}
    table, rows, bad = read_shards(folder, skip=loaded)
    with transaction(con):
        if rows:
            ledger = pa.table({"path": list(rows), "n_rows": list(rows.values())})
            with registered(con, "_shard", table), registered(con, "_ledger", ledger):
                counts = _load(con, run_id)
                con.execute("INSERT INTO shard_ledger SELECT path, n_rows, ?, now() FROM _ledger", [run_id])
        else:
            counts = {"traces": 0, "spans": 0}
        add_quarantine(wh, [Quarantined("shard", f"{folder.url}/{n}", w, "") for n, w in bad.items()], run_id)
    for name in bad:
        folder.move(name, folder / QUARANTINE)
    archive_shards(folder, loaded | set(rows))
    return {**counts, "quarantined_shards": len(bad)}


def _load(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, int]:
    # A failed trace's new attempt replaces it, spans included.
    con.execute(
        "DELETE FROM spans WHERE trace_id IN (SELECT trace_id FROM _shard JOIN traces t USING (trace_id)"
        " WHERE t.status <> 'ok')"
    )
    traces = con.execute(
        """
        INSERT INTO traces
        SELECT trace_id, question_id, ?, method, student_model, teacher_model, predictor_ids, text,
               answer, n_tokens, n_tokens_teacher, n_tokens_student, n_switches, n_wasted_tokens, status,
               error, attempts, 1, n_generated_tokens, n_failed_tokens
        FROM _shard
        ON CONFLICT (trace_id) DO UPDATE SET
            run_id = EXCLUDED.run_id, text = EXCLUDED.text, answer = EXCLUDED.answer,
            n_tokens = EXCLUDED.n_tokens, n_tokens_teacher = EXCLUDED.n_tokens_teacher,
            n_tokens_student = EXCLUDED.n_tokens_student, n_switches = EXCLUDED.n_switches,
            n_wasted_tokens = EXCLUDED.n_wasted_tokens, status = EXCLUDED.status, error = EXCLUDED.error,
            attempts = EXCLUDED.attempts, nights = traces.nights + 1,
            n_generated_tokens = EXCLUDED.n_generated_tokens, n_failed_tokens = EXCLUDED.n_failed_tokens
        WHERE traces.status <> 'ok'
        """,
        [run_id],
    ).fetchall()[0][0]
    spans = con.execute(
        """
        INSERT OR IGNORE INTO spans
        SELECT trace_id, idx - 1, s.author, s.text, s.n_tokens
        FROM (SELECT trace_id, unnest(spans) AS s, generate_subscripts(spans, 1) AS idx FROM _shard)
        """
    ).fetchall()[0][0]
    return {"traces": traces, "spans": spans}


def run_summary(wh: Warehouse, run_id: str) -> list[dict[str, object]]:
    """Per method, the traces a synthesis run loaded: how many, how many failed, their tokens and
    the teacher's share of them."""
    return wh.frame(
        """
        SELECT method, count(*) AS traces, count(*) FILTER (status <> 'ok') AS failed,
               sum(n_tokens)::BIGINT AS tokens,
               sum(n_tokens_teacher)::DOUBLE / nullif(sum(n_tokens), 0) AS teacher_share
        FROM traces WHERE run_id = ? GROUP BY method ORDER BY method
        """,
        [run_id],
    ).to_dicts()
