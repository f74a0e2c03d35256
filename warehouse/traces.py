"""Traces and spans: the questions to synthesize, what is done already, loading trace shards
(idempotent), and what a synthesis run made."""

from __future__ import annotations

import duckdb
import polars as pl
import pyarrow as pa

from tessy.sources.records import Quarantined
from tessy.storage import Folder
from tessy.synthesis.identity import Recipe
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
    recipes: list[Recipe],
    retry_failed: int,
    limit: int | None = None,
) -> pl.DataFrame:
    """(trace_id, question_id, question, method, recipe) for each contest question and method with no
    finished trace, question by question in id order, methods (`recipes`) as listed; a failed trace
    counts as not done on up to `retry_failed` later nights; at most `limit` questions.

    All in DuckDB, and only the labels written since the last plan got to (`plan_marks`) are read: a
    night costs what its new questions cost, whatever the history. Each plan moves each recipe's mark
    up to the first label still not done."""
    table = pa.table(
        {
            "method": [r.method for r in recipes],
            "recipe": [r.recipe_id for r in recipes],
            "prefix": [r.prefix for r in recipes],
            "suffix": [r.suffix for r in recipes],
            "method_order": list(range(len(recipes))),
        }
    )
    params = {"filter": filter_name, "version": filter_version, "retry": retry_failed}
    limit_clause = f"LIMIT {int(limit)}" if limit is not None else ""
    with registered(wh.con, "_recipes", table), transaction(wh.con):
        _recognize_recipes(wh.con)
        marks = wh.frame(
            """
            SELECT r.recipe, coalesce(m.through, -1) AS through FROM _recipes r
            LEFT JOIN plan_marks m ON m.recipe = r.recipe AND m.filter = $filter
                AND m.filter_version = $version AND m.retry_failed = $retry
            """,
            params,
        )
        # Labels are stored in `seq` order, so a constant lower bound skips the history's row groups.
        low = min(marks["through"], default=-1)
        with registered(wh.con, "_marks", marks.to_arrow()):
            wh.con.execute(
                """
                CREATE OR REPLACE TEMP TABLE _todo AS
                WITH candidates AS (
                    SELECT l.question_id, l.seq, r.* FROM question_labels l
                    CROSS JOIN _recipes r JOIN _marks m USING (recipe)
                    WHERE l.filter = $filter AND l.filter_version = $version AND l.is_contest
                        AND l.seq > $low AND l.seq > m.through
                )
                SELECT c.* FROM candidates c ANTI JOIN (
                    SELECT question_id, recipe FROM traces
                    WHERE (status = 'ok' OR nights > $retry)
                        AND question_id IN (SELECT question_id FROM candidates)
                ) t USING (question_id, recipe)
                """,
                {**params, "low": low},
            )
        # Every label before a recipe's first one not done has its trace: the next plan starts there.
        wh.con.execute(
            """
            INSERT OR REPLACE INTO plan_marks
            SELECT r.recipe, $filter, $version, $retry,
                   coalesce((SELECT min(seq) - 1 FROM _todo t WHERE t.recipe = r.recipe),
                            (SELECT max(seq) FROM question_labels
                             WHERE filter = $filter AND filter_version = $version))
            FROM _recipes r
            WHERE EXISTS (SELECT 1 FROM question_labels WHERE filter = $filter AND filter_version = $version)
            """,
            params,
        )
        todo = wh.frame(
            f"""
            WITH first AS (
                SELECT DISTINCT question_id FROM _todo ORDER BY question_id {limit_clause}
            )
            SELECT sha256(t.prefix || t.question_id || t.suffix) AS trace_id, t.question_id,
                   q.text AS question, t.method, t.recipe
            FROM _todo t JOIN first USING (question_id) JOIN questions q USING (question_id)
            ORDER BY t.question_id, t.method_order
            """
        )
        wh.con.execute("DROP TABLE _todo")
    return todo


def _recognize_recipes(con: duckdb.DuckDBPyConnection) -> None:
    """Give the traces loaded without a recipe (before it was stored) the one of `_recipes` that makes
    their id, so planning counts them as done; a cost of the old traces alone, none once recognized."""
    con.execute(
        """
        UPDATE traces SET recipe = r.recipe FROM _recipes r
        WHERE traces.recipe IS NULL AND traces.method = r.method
            AND traces.trace_id = sha256(r.prefix || traces.question_id || r.suffix)
        """
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
    """Take each of the shards' traces that is new or replaces a failed one (its `nights` counted,
    its spans replaced, measured by QA again: `measured_key`; a failed trace has no per-trace metrics),
    once, with its spans. The tables have no key index (migration 0012): this is what keeps a trace
    id once. Only the rows of the shards' trace ids are read from the history."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _taken AS
        WITH incoming AS (
            -- A trace in two shards (the same job run twice) is taken once, a finished attempt first.
            FROM _shard QUALIFY row_number() OVER (PARTITION BY trace_id ORDER BY status <> 'ok') = 1
        ), held AS (
            SELECT trace_id, status, nights FROM traces WHERE trace_id IN (SELECT trace_id FROM _shard)
        )
        SELECT i.*, h.trace_id IS NOT NULL AS replaces, coalesce(h.nights, 0) + 1 AS nights
        FROM incoming i LEFT JOIN held h USING (trace_id)
        WHERE h.trace_id IS NULL OR h.status <> 'ok'
        """
    )
    replaced = "SELECT trace_id FROM _taken WHERE replaces"
    con.execute(f"DELETE FROM spans WHERE trace_id IN ({replaced})")
    con.execute(f"DELETE FROM traces WHERE trace_id IN ({replaced})")
    traces = con.execute(
        """
        INSERT INTO traces
        SELECT trace_id, question_id, ?, method, student_model, teacher_model, predictor_ids, text,
               answer, n_tokens, n_tokens_teacher, n_tokens_student, n_switches, n_wasted_tokens, status,
               error, attempts, nights, n_generated_tokens, n_failed_tokens, nullif(recipe, ''), NULL
        FROM _taken
        """,
        [run_id],
    ).fetchall()[0][0]
    spans = con.execute(
        """
        INSERT INTO spans
        SELECT trace_id, idx - 1, s.author, s.text, s.n_tokens
        FROM (SELECT trace_id, unnest(spans) AS s, generate_subscripts(spans, 1) AS idx FROM _taken)
        """
    ).fetchall()[0][0]
    con.execute("DROP TABLE _taken")
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
