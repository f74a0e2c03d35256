"""Synthesis in the warehouse: questions to synthesize, and loading trace shards (idempotent)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from tessy.config import PipelineConfig
from tessy.runtime import PredictorRef, filter_identity, trace_id
from tessy.synthesis.scheduler import Job
from tessy.synthesis.shards import read_shards
from warehouse.db import Warehouse, registered, transaction


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


def plan_jobs(
    wh: Warehouse,
    cfg: PipelineConfig,
    methods: list[str],
    predictors: dict[str, PredictorRef],
    limit: int | None = None,
) -> list[Job]:
    """One job per (contest question, method) with no trace in the warehouse for this config; at
    most `limit` questions."""
    name, version = filter_identity(cfg)
    questions = questions_to_synthesize(wh, name, version)
    done = set(wh.frame("SELECT trace_id FROM traces")["trace_id"].to_list())
    jobs: list[Job] = []
    n_questions = 0
    for qid, text in questions.iter_rows():
        todo = [
            Job(tid, qid, text, m) for m in methods if (tid := trace_id(cfg, qid, m, predictors)) not in done
        ]
        if todo:
            if limit is not None and n_questions >= limit:
                break
            jobs.extend(todo)
            n_questions += 1
    return jobs


def load_shards(wh: Warehouse, directory: Path, run_id: str) -> dict[str, int]:
    """Move every shard's traces and spans into the warehouse; traces already there are skipped, so
    loading the same shards again changes nothing."""
    table = read_shards(Path(directory))
    if table.num_rows == 0:
        return {"traces": 0, "spans": 0}
    con = wh.con
    with registered(con, "_shard", table), transaction(con):
        new = con.execute(
            """
            INSERT OR IGNORE INTO traces
            SELECT trace_id, question_id, ?, method, student_model, teacher_model, predictor_ids, text,
                   answer, n_tokens, n_tokens_teacher, n_tokens_student, n_switches, n_wasted_tokens, status,
                   error, attempts
            FROM _shard
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
    return {"traces": new, "spans": spans}


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
