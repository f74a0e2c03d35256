"""The cost of a night as history grows. A warehouse is pre-filled with N stored traces (made directly
in it with SQL, no servers: questions, contest labels, one finished student-only trace each with two
spans, under the ids synthesis gives them, the per-trace metrics an earlier QA run stored for them
and the plan mark that night left), then a night adds 1,000 new questions and runs the pipeline's own steps on
them: plan (which jobs are new), load (1,000 traces from shards) and QA without code or NLL (token
counts, similarity, per-method metrics and the report). The fill and each night run in separate fresh
processes, so the peak RSS printed is a night's alone, as a nightly run starts its own process. Each
size runs `--nights` nights, each on a fresh copy of the filled warehouse, and the median one counts.

Target: the 1M-trace night takes at most 1.5x the 1k-trace night, with peak RSS under 2 GiB. The
warehouse's DuckDB is capped at `--db-memory` (`TESSY_DB_MEMORY`); uncapped it caches what it reads
up to 80% of RAM. Warm-up nights on the smallest size run first and are not counted.

    python bench/scale.py [--sizes 1k,100k,1m] [--nights 3] [--db-memory 1GB] [--json]

`--json`: the last line is one object, {"night_s": {"1k": x, ...}, "steps_s": {"1k": {"plan": ..,
"load": .., "qa": ..}, ...}, "night_1m_vs_1k": z/x, "peak_rss_mib": m, "db_memory": cap} (the ratio
is the largest size's night over the smallest's when 1k or 1m is not among the sizes).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from tessy.config import PipelineConfig, load_config
from tessy.filtering.judges import filter_identity
from tessy.stages import qa as qa_stage
from tessy.stages import synthesize as synthesize_stage
from tessy.synthesis.identity import recipe
from tessy.synthesis.records import Span, Trace
from tessy.synthesis.shards import ShardWriter
from warehouse.db import open_warehouse

WORK = Path(".tessy/bench/scale")
NEW = 1_000  # traces a night adds
FILLED = "filled.duckdb"  # the warehouse as the fill left it; each night runs on a copy
METHOD = "student-only"
SIZES = {"1k": 1_000, "100k": 100_000, "1m": 1_000_000}

# A response of a few hundred characters that differs per trace (its number `i`), as a microworld one.
RESPONSE = (
    "'<think>\n' || repeat('Let me count the values of list ' || (i % 97) || ' and keep the largest. ', 6)"
    " || '\n</think>\n\n```python\nprint(max(' || i || ', 0))\n```'"
)

# The history is the questions that sort first, so the night's new ones are the rest; labels are
# written in that order, the history's (true) or the night's (false).
ORDERED = "SELECT question_id, row_number() OVER (ORDER BY question_id) AS i FROM questions"
LABELS = f"""
    INSERT INTO question_labels (question_id, filter, filter_version, is_contest, run_id)
    SELECT question_id, ?, ?, true, 'fill' FROM ({ORDERED}) WHERE (i <= ?) = ? ORDER BY i
"""


def bench_config(work: Path, models: Path) -> PipelineConfig:
    config = {
        "name": "scale",
        "warehouse": str(work / "warehouse.duckdb"),
        "workdir": str(work / "work"),
        "models": {
            "student": {"path": str(models / "student"), "family": "qwen3", "engine": "hf"},
            "teacher": {"path": str(models / "teacher"), "family": "gpt-oss", "engine": "hf"},
        },
        "filter": {"judge": "heuristic"},
        "synthesis": {"methods": [METHOD]},
        "qa": {"run_code": False, "student_nll": False},
    }
    path = work / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_config(path)


def fill(cfg: PipelineConfig, history: int) -> None:
    """`history` + NEW contest questions, a finished trace for each of the first `history` (with its
    recipe and two spans), its per-trace metrics from an earlier QA run with the bench's settings and
    their sums, and the mark the plan of that earlier night left (the night's questions are labelled
    after it)."""
    name, version = filter_identity(cfg)
    made_by = recipe(cfg, METHOD, [])
    key = qa_stage.settings_key(cfg)
    with open_warehouse(cfg.warehouse) as wh:
        con = wh.con
        con.execute(
            """
            INSERT INTO questions (question_id, text, source, domain, first_run_id)
            SELECT sha256('question ' || i), 'Read n numbers and print the largest. Case ' || i || '.',
                   'scale', 'code', 'fill'
            FROM range(?) t(i)
            """,
            [history + NEW],
        )
        con.execute(LABELS, [name, version, history, True])
        con.execute(
            f"""
            INSERT INTO traces
            SELECT sha256($prefix || question_id || $suffix), question_id, 'fill', $method, 'student',
                   'teacher', '', {RESPONSE}, 'print(0)', 120, 0, 120, 0, 0, 'ok', NULL, 1, 1, 120, 0,
                   $recipe, $key
            FROM ({ORDERED}) WHERE i <= $history
            """,
            {
                "prefix": made_by.prefix,
                "suffix": made_by.suffix,
                "method": METHOD,
                "recipe": made_by.recipe_id,
                "key": key,
                "history": history,
            },
        )
        # Two spans each, as the night's traces have (the microworld's have about six).
        con.execute(
            "INSERT INTO spans SELECT trace_id, s.idx, 'student',"
            " CASE s.idx WHEN 0 THEN text ELSE answer END, 60 FROM traces CROSS JOIN (VALUES (0), (1)) s(idx)"
        )
        con.execute("INSERT INTO qa_runs VALUES ('qa-fill', ?)", [key])
        con.execute(
            """
            INSERT INTO qa_metrics
            SELECT trace_id, metric, value, 'qa-fill'
            FROM traces CROSS JOIN (VALUES ('n_tokens', 120.0), ('n_tokens_teacher', 0.0),
                ('n_tokens_student', 120.0), ('student_share', 1.0), ('repetition_rate', 0.1),
                ('answer_present', 1.0)) m(metric, value)
            """
        )
        con.execute(
            """
            INSERT INTO qa_sums
            SELECT ?, t.student_model, t.teacher_model, t.method, m.metric, count(*), sum(m.value)
            FROM qa_metrics m JOIN traces t ON t.trace_id = m.subject_id GROUP BY ALL
            """,
            [key],
        )
    if history:
        synthesize_stage.plan(cfg, [METHOD])  # the earlier night's plan: nothing to do, its mark left
    with open_warehouse(cfg.warehouse) as wh:
        wh.con.execute(LABELS, [name, version, history, False])


def night_shards(cfg: PipelineConfig, jobs: list) -> None:
    """The night's traces as synthesis writes them: Parquet shards under the workdir."""
    writer = ShardWriter(synthesize_stage.shard_folder(cfg), cfg.synthesis.shard_size)
    for n, job in enumerate(jobs):
        thinking = f"Let me count the values of list {n % 97} and keep the largest. " * 6
        answer = f"```python\nprint(max({n}, 0))\n```"
        writer.add(
            Trace(
                trace_id=job.trace_id,
                question_id=job.question_id,
                method=job.method,
                student_model="student",
                teacher_model="teacher",
                predictor_ids="",
                text=f"<think>\n{thinking}\n</think>\n\n{answer}",
                answer=answer,
                spans=[Span("student", thinking, 100), Span("student", answer, 20)],
                n_tokens=120,
                n_tokens_teacher=0,
                n_tokens_student=120,
                n_switches=0,
                n_wasted_tokens=0,
                n_generated_tokens=120,
                n_failed_tokens=0,
                status="ok",
                error=None,
                attempts=1,
                recipe=job.recipe,
            )
        )
    writer.flush()


def filled(label: str, history: int, models: str) -> float:
    """A fresh warehouse `WORK/label/FILLED` with `history` stored traces; returns the seconds it took."""
    work = WORK / label
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.perf_counter()
    fill(bench_config(work, Path(models)), history)
    seconds = time.perf_counter() - started
    (work / "warehouse.duckdb").rename(work / FILLED)
    return seconds


def before_night(label: str) -> None:
    """The filled warehouse as a night finds it, and no work of an earlier night."""
    work = WORK / label
    shutil.rmtree(work / "work", ignore_errors=True)
    shutil.copy(work / FILLED, work / "warehouse.duckdb")
    os.sync()  # the copy's pages are written out now, not while the night runs


def one_night(label: str, models: str, db_memory: str) -> dict[str, Any]:
    """Time one night's plan, load and QA on the warehouse under WORK/label, its DuckDB capped at
    `db_memory` (the fill is not: it writes the whole history in one transaction)."""
    os.environ["TESSY_DB_MEMORY"] = db_memory
    work = WORK / label
    cfg = bench_config(work, Path(models))
    steps: dict[str, float] = {}
    started = time.perf_counter()
    work_plan = synthesize_stage.plan(cfg, [METHOD])
    steps["plan"] = time.perf_counter() - started
    if len(work_plan.jobs) != NEW:
        raise RuntimeError(f"planned {len(work_plan.jobs)} jobs, expected the {NEW} new questions")
    night_shards(cfg, work_plan.jobs)
    started = time.perf_counter()
    loaded = synthesize_stage.load(cfg, "night")
    steps["load"] = time.perf_counter() - started
    if loaded["traces"] != NEW:
        raise RuntimeError(f"loaded {loaded['traces']} traces, expected {NEW}")
    started = time.perf_counter()
    qa = qa_stage.run(cfg, "qa-night")
    steps["qa"] = time.perf_counter() - started
    return {
        "steps": steps,
        "night_s": sum(steps.values()),
        "qa_measured": qa.n_measured,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def in_fresh_process(fn: Callable[..., Any], *args: Any) -> Any:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def main(
    sizes: Annotated[str, typer.Option(help="stored traces before the night: 1k, 100k, 1m")] = "1k,100k,1m",
    models: Annotated[Path, typer.Option(help="dir with the microworld student and teacher")] = Path(
        ".tessy/models"
    ),
    db_memory: Annotated[str, typer.Option(help="the warehouse's DuckDB memory cap; '' for none")] = "1GB",
    nights: Annotated[int, typer.Option(help="nights per size, each on a fresh copy; the median counts")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="last line: one JSON object")] = False,
) -> None:
    labels = [s.strip().lower() for s in sizes.split(",")]
    unknown = [s for s in labels if s not in SIZES]
    if unknown:
        raise typer.BadParameter(f"unknown sizes {unknown}; choose from {list(SIZES)}")
    results = {}
    for label in [labels[0], *labels]:
        # The fill and each night in a fresh process, so the peak RSS is a night's alone.
        fill_s = in_fresh_process(filled, label, SIZES[label], str(models))
        runs = []
        for _ in range(nights):
            before_night(label)
            runs.append(in_fresh_process(one_night, label, str(models), db_memory))
        shutil.rmtree(WORK / label, ignore_errors=True)
        print(f"{label}: nights {[round(r['night_s'], 3) for r in runs]}", flush=True)
        # The median night by time (single nights swing with the machine's load), the peak RSS of all.
        median = sorted(runs, key=lambda r: r["night_s"])[len(runs) // 2]
        night = {"fill_s": fill_s, **median, "rss_mib": max(r["rss_mib"] for r in runs)}
        results[label] = night  # the first size's warm-up nights are overwritten by its counted ones
    table = Table(title=f"a night that adds {NEW:,} traces, by traces stored before it")
    for column in ("stored", "fill s", "plan s", "load s", "QA s", "night s", "QA measured", "peak RSS MiB"):
        table.add_column(column, justify="right")
    for label, r in results.items():
        s = r["steps"]
        table.add_row(
            label,
            f"{r['fill_s']:.1f}",
            f"{s['plan']:.2f}",
            f"{s['load']:.2f}",
            f"{s['qa']:.2f}",
            f"{r['night_s']:.2f}",
            f"{r['qa_measured']:,}",
            f"{r['rss_mib']:.0f}",
        )
    console = Console()
    console.print(table)
    first, last = results[labels[0]], results[labels[-1]]
    ratio = last["night_s"] / first["night_s"]
    peak = max(r["rss_mib"] for r in results.values())
    cap = f"DuckDB capped at {db_memory}" if db_memory else "DuckDB uncapped"
    console.print(f"night {labels[-1]} / {labels[0]}: {ratio:.2f}x (target <= 1.5x)")
    console.print(f"peak RSS {peak:.0f} MiB (target < 2048); {cap}")
    if as_json:
        print(
            json.dumps(
                {
                    "night_s": {k: r["night_s"] for k, r in results.items()},
                    "steps_s": {k: r["steps"] for k, r in results.items()},
                    "night_1m_vs_1k": ratio,
                    "peak_rss_mib": peak,
                    "db_memory": db_memory,
                }
            )
        )


if __name__ == "__main__":
    typer.run(main)
