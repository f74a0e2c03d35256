"""Peak memory of a release as it grows. A warehouse is filled with N finished TESSY traces of about
`--text-kib` KiB each (made directly in it with SQL, no servers), each with the QA verdict a release
needs, and a release of all of them is made twice, each in a fresh process:

- stream: the release stage as it runs (`tessy release`): narrow candidate rows, the traces' rows read
  `BATCH_ROWS` at a time in trace_id order into the shards, the hash and the gate's row checks;
- whole: the same rows read as one frame and exported from memory, as the stage did before.

Both give the same content hash (checked). Target: the stream's peak RSS does not grow with the
release (its largest size over its smallest near 1x) while the whole frame's does. The stream runs
with the warehouse's DuckDB capped at `--db-memory`, as `TESSY_DB_MEMORY` caps it in a nightly run;
the whole frame cannot (DuckDB runs out of memory sorting all the rows under a cap), so it runs
uncapped.

    python bench/release.py [--sizes 4000,40000] [--text-kib 12] [--db-memory 256MB] [--json]

`--json`: the last line is one object, {"rows": [...], "text_mib": {...}, "stream": {n: {"s": .., "rss_mib":
..}}, "whole": {...}, "stream_rss_growth": x, "whole_rss_growth": y}.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
import yaml
from rich.console import Console
from rich.table import Table

from tessy.config import PipelineConfig, load_config
from tessy.release.export import RELEASE_COLUMNS, export_release
from tessy.stages import release as release_stage
from warehouse.db import open_warehouse
from warehouse.metrics import trace_frame

WORK = Path(".tessy/bench/release")


def bench_config(work: Path) -> PipelineConfig:
    config = {
        "name": "release",
        "warehouse": str(work / "warehouse.duckdb"),
        "workdir": str(work / "work"),
        "models": {
            "student": {"path": "student", "family": "qwen3", "engine": "hf"},
            "teacher": {"path": "teacher", "family": "gpt-oss", "engine": "hf"},
        },
        "release": {"methods": ["tessy"]},
    }
    path = work / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_config(path)


def fill(work: Path, n: int, text_kib: int) -> float:
    """`n` questions with a TESSY trace each whose thinking is `text_kib` KiB of hex words (as little
    compressible as text), and the QA verdict `answer_present`; returns the MiB of text."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cfg = bench_config(work)
    words = text_kib * 1024 // 33
    with open_warehouse(cfg.warehouse) as wh:
        wh.con.execute(
            """
            INSERT INTO questions (question_id, text, source, domain, first_run_id)
            SELECT 'q' || i, 'Print the sum of case ' || i || '.', 'bench', 'code', 'fill' FROM range(?) t(i)
            """,
            [n],
        )
        wh.con.execute(
            """
            INSERT INTO traces (trace_id, question_id, run_id, method, student_model, teacher_model,
                                predictor_ids, text, answer, n_tokens, n_tokens_teacher, n_tokens_student,
                                n_switches, n_wasted_tokens, status, attempts)
            SELECT sha256('trace ' || i), 'q' || i, 'fill', 'tessy', 'student', 'teacher', 'p1,p2',
                   '<think>\n' || (SELECT string_agg(md5(i || '-' || j), ' ') FROM range(?) w(j))
                       || '\n</think>\n\nThe sum is ' || i || '.',
                   'The sum is ' || i || '.', 4000, 3000, 1000, 4, 0, 'ok', 1
            FROM range(?) t(i)
            """,
            [words, n],
        )
        wh.con.execute("INSERT INTO qa_metrics SELECT trace_id, 'answer_present', 1.0, 'qa-fill' FROM traces")
        return wh.scalar("SELECT sum(length(text)) FROM traces") / 2**20


def stream(work: Path, db_memory: str) -> dict[str, Any]:
    os.environ["TESSY_DB_MEMORY"] = db_memory
    started = time.perf_counter()
    made = release_stage.create(bench_config(work), "stream", "bench")
    return {"s": time.perf_counter() - started, "hash": made.content_hash, "rss_mib": _rss()}


def whole(work: Path) -> dict[str, Any]:
    cfg = bench_config(work)
    started = time.perf_counter()
    with open_warehouse(cfg.warehouse) as wh:
        frame = trace_frame(wh, cfg, cfg.release.methods).filter(pl.col("status") == "ok")
    made = export_release(frame.select(RELEASE_COLUMNS), work / "whole")
    return {"s": time.perf_counter() - started, "hash": made.content_hash, "rss_mib": _rss()}


def _rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_fresh_process(fn: Any, *args: Any) -> Any:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def main(
    sizes: Annotated[str, typer.Option(help="traces in the release, comma-separated")] = "4000,40000",
    text_kib: Annotated[int, typer.Option(help="KiB of text per trace")] = 12,
    db_memory: Annotated[str, typer.Option(help="the warehouse's DuckDB memory cap")] = "256MB",
    as_json: Annotated[bool, typer.Option("--json", help="last line: one JSON object")] = False,
) -> None:
    rows = [int(s) for s in sizes.split(",")]
    text: dict[int, float] = {}
    results: dict[str, dict[int, dict[str, Any]]] = {"stream": {}, "whole": {}}
    for n in rows:
        work = WORK / str(n)
        text[n] = in_fresh_process(fill, work, n, text_kib)
        results["stream"][n] = in_fresh_process(stream, work, db_memory)
        results["whole"][n] = in_fresh_process(whole, work)
        if results["stream"][n]["hash"] != results["whole"][n]["hash"]:
            raise RuntimeError(f"{n} rows: the streamed release hashes otherwise than the whole frame")
        shutil.rmtree(work, ignore_errors=True)
    table = Table(title=f"a release of N traces of {text_kib} KiB (stream: DuckDB capped at {db_memory})")
    for column in ("traces", "text MiB", "stream s", "stream RSS MiB", "whole s", "whole RSS MiB"):
        table.add_column(column, justify="right")
    for n in rows:
        s, w = results["stream"][n], results["whole"][n]
        figures = (s["s"], s["rss_mib"], w["s"], w["rss_mib"])
        table.add_row(
            f"{n:,}",
            f"{text[n]:.0f}",
            *(f"{x:.1f}" if i % 2 == 0 else f"{x:.0f}" for i, x in enumerate(figures)),
        )
    console = Console()
    console.print(table)
    growth = {k: r[rows[-1]]["rss_mib"] / r[rows[0]]["rss_mib"] for k, r in results.items()}
    console.print(
        f"peak RSS at {rows[-1]:,} traces over {rows[0]:,}: stream {growth['stream']:.2f}x,"
        f" whole frame {growth['whole']:.2f}x"
    )
    if as_json:
        out = {
            "rows": rows,
            "text_mib": text,
            **{k: {n: {m: r[n][m] for m in ("s", "rss_mib")} for n in rows} for k, r in results.items()},
            "stream_rss_growth": growth["stream"],
            "whole_rss_growth": growth["whole"],
        }
        print(json.dumps(out))


if __name__ == "__main__":
    typer.run(main)
