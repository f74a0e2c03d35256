"""Fidelity of synthesized traces on held-out microworld questions: does TESSY keep the teacher's
capability (solved rate) while it reads like the student (share, similarity, NLL)?

The pipeline's own stages run on a fresh warehouse under .tessy/bench/fidelity, with the demo
config's models and settings: N held-out (eval split) microworld contest questions are ingested and
labelled by the LLM filter, the predictors stage trains both boundary predictors, the synthesize
stage writes TESSY, teacher-only, student-only and teacher-think traces through vLLM servers
started once, and QA measures them (code run in the sandbox, the student's NLL of the thinking).

Prints per method: traces, failed, solved rate (over finished traces), student token share (of the
whole trace, and of the thinking alone: the microworld's answer repeats the drafted code, about 28%
of a TESSY trace, where a real trace's answer is a small part of it), TF-IDF
similarity to student-only, student NLL, answer_follows_draft (the answer's code is the thinking's
last draft); then the solved rate per problem family. `--json`: the last line is one object,
{"solved": {method: x}, "tessy_vs_teacher_solved": r, "student_share": s, "student_share_thinking": s,
"similarity": {method: x}, "nll": {method: x}, "answer_follows_draft": {method: x}, "questions": n,
"seconds": t}.

    python bench/fidelity.py [--questions 200] [--seed 0] [--json]
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from tessy.config import PipelineConfig, SourceConfig, load_config
from tessy.microworld.build import build
from tessy.microworld.evaluate import follows_draft
from tessy.microworld.problems import export_questions, generate_problems
from tessy.quality.traces import thinking_of
from tessy.runtime import ROLES, model_endpoints
from tessy.stages import filter as filter_stage
from tessy.stages import predictors as predictors_stage
from tessy.stages import qa as qa_stage
from tessy.stages import synthesize as synthesize_stage
from tessy.stages.ingest import ingest_source
from warehouse.db import open_warehouse, recorded_run

WORK = Path(".tessy/bench/fidelity")
METHODS = ["tessy", "teacher-only", "student-only", "teacher-think"]

# One row per finished trace: its question, thinking and answer, QA's solved flag and student NLL, and
# the student's tokens in the thinking alone (every span but the last, the answer).
TRACES = """
WITH thinking AS (
    SELECT trace_id, sum(n_tokens)::DOUBLE AS n_thinking,
           coalesce(sum(n_tokens) FILTER (WHERE author = 'student'), 0)::DOUBLE
           AS n_thinking_student
    FROM (SELECT *, idx = max(idx) OVER (PARTITION BY trace_id) AS is_answer FROM spans)
    WHERE NOT is_answer GROUP BY trace_id
)
SELECT t.trace_id, t.method, q.text AS question, t.text, t.answer, t.n_tokens, t.n_tokens_student,
       th.n_thinking, th.n_thinking_student,
       max(m.value) FILTER (WHERE m.metric = 'solved') AS solved,
       max(m.value) FILTER (WHERE m.metric = 'student_nll') AS nll
FROM traces t JOIN questions q USING (question_id) LEFT JOIN qa_metrics m ON m.subject_id = t.trace_id
LEFT JOIN thinking th USING (trace_id)
WHERE t.status = 'ok'
GROUP BY ALL
"""


def bench_config(config: Path, questions: int, seed: int) -> PipelineConfig:
    """The demo config on a fresh warehouse whose only source is `questions` held-out questions."""
    shutil.rmtree(WORK, ignore_errors=True)
    source = export_questions(WORK / "questions.jsonl", questions, 0, seed=seed)
    cfg = load_config(
        config,
        db=WORK / "warehouse.duckdb",
        overrides={"synthesis": {"methods": METHODS, "limit": questions}},
    )
    return cfg.model_copy(update={"sources": [SourceConfig(path=str(source))], "workdir": WORK / "work"})


def run_pipeline(cfg: PipelineConfig) -> dict[str, float]:
    """Ingest, filter, predictors and synthesize with servers started once, then QA; returns QA's
    TF-IDF similarity to student-only per method."""
    with recorded_run(cfg.warehouse, "bench-fidelity", cfg.public_dict()) as run:
        for source in cfg.sources:
            ingest_source(cfg.warehouse, source, cfg.ingest, run.run_id)
        with model_endpoints(cfg, ROLES) as endpoints:
            filter_stage.run(cfg, run.run_id, endpoints=endpoints)
            predictors_stage.run(cfg, run.run_id, endpoints=endpoints)
            run.stats = synthesize_stage.run(cfg, run.run_id, endpoints=endpoints, show_progress=False)
        outcome = qa_stage.run(cfg, run.run_id)
    return {r["method"]: r["similarity_to_student"] for r in outcome.summary}


def traces(cfg: PipelineConfig, questions: int, seed: int) -> pl.DataFrame:
    """The finished traces with their problem family and whether the answer carries out the draft."""
    with open_warehouse(cfg.warehouse, read_only=True) as wh:
        frame = wh.frame(TRACES)
    family = {p.statement: p.family for p in generate_problems(questions, seed, "eval")}
    follows = [follows_draft(thinking_of(t), a) for t, a in zip(frame["text"], frame["answer"], strict=True)]
    return frame.with_columns(
        family=pl.col("question").replace_strict(family, default=None),
        follows=pl.Series(follows, dtype=pl.Float64),
        share=pl.col("n_tokens_student") / pl.col("n_tokens"),
        thinking_share=pl.col("n_thinking_student") / pl.col("n_thinking"),
    )


def method_table(frame: pl.DataFrame, failed: dict[str, int], similarity: dict[str, float]) -> pl.DataFrame:
    table = frame.group_by("method").agg(
        traces=pl.len(),
        solved=pl.col("solved").mean(),
        student_share=pl.col("share").mean(),
        thinking_share=pl.col("thinking_share").mean(),
        nll=pl.col("nll").mean(),
        answer_follows_draft=pl.col("follows").mean(),
    )
    return table.with_columns(
        failed=pl.col("method").replace_strict(failed, default=0),
        similarity=pl.col("method").replace_strict(similarity, default=None),
    ).sort(pl.col("method").replace_strict({m: i for i, m in enumerate(METHODS)}, default=len(METHODS)))


def _print(title: str, frame: pl.DataFrame) -> None:
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(column)
    for row in frame.iter_rows():
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else "-" if v is None else str(v) for v in row))
    Console().print(table)


def main(
    questions: Annotated[int, typer.Option(min=1, help="held-out contest questions")] = 200,
    seed: int = 0,
    config: Annotated[Path, typer.Option(help="models and settings")] = Path("configs/demo.yaml"),
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object, last line")] = False,
) -> None:
    start = time.perf_counter()
    build()
    cfg = bench_config(config, questions, seed)
    similarity = run_pipeline(cfg)
    with open_warehouse(cfg.warehouse, read_only=True) as wh:
        failed = dict(wh.frame("SELECT method, count(*) FROM traces WHERE status != 'ok' GROUP BY 1").rows())
    frame = traces(cfg, questions, seed)
    table = method_table(frame, failed, similarity)
    _print(f"per method ({questions} held-out questions)", table)
    by_family = frame.pivot(on="method", index="family", values="solved", aggregate_function="mean")
    _print("solved per family", by_family.sort("family"))
    rows = {r["method"]: r for r in table.to_dicts()}
    teacher = rows.get("teacher-only", {}).get("solved")
    result = {
        "solved": {m: r["solved"] for m, r in rows.items()},
        "tessy_vs_teacher_solved": rows["tessy"]["solved"] / teacher if teacher else None,
        "student_share": rows["tessy"]["student_share"],
        "student_share_thinking": rows["tessy"]["thinking_share"],
        "similarity": {m: r["similarity"] for m, r in rows.items()},
        "nll": {m: r["nll"] for m, r in rows.items()},
        "answer_follows_draft": {m: r["answer_follows_draft"] for m, r in rows.items()},
        "questions": questions,
        "seconds": round(time.perf_counter() - start),
    }
    if as_json:
        print(json.dumps(result))


if __name__ == "__main__":
    typer.run(main)
