"""Ingest throughput: 1,000,000 OpenThoughts3-layout rows as Parquet through `tessy ingest`.

Prints rows/s and the CLI's peak RSS (`--json`: one JSON object). Targets: >= 50,000 rows/s and
peak RSS < 2 GiB on a 2-core machine. `--reader`: meanwhile an analyst's query (`read_query`, as
`tessy sql` runs it) every 0.2 s; adds its longest and median time, i.e. how long a reader waits for
the ingest's hold on the warehouse (the reader's work slows the ingest a little).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import pyarrow as pa
import pyarrow.parquet as pq
import typer

from warehouse.db import open_warehouse, read_query

CHUNK = 50_000
GPT_TURN = ("Okay, let's see. We read the input, keep a running total and print it at the end. " * 25)[:2000]


def write_rows(path: Path, n: int) -> None:
    """OpenThoughts3 columns; about 1% of the questions repeat an earlier one."""
    conversation = pa.struct([("from", pa.string()), ("value", pa.string())])
    schema = pa.schema(
        [
            ("difficulty", pa.int64()),
            ("source", pa.string()),
            ("domain", pa.string()),
            ("conversations", pa.list_(conversation)),
        ]
    )
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, n, CHUNK):
            ids = [i if i % 100 else max(i - 1, 0) for i in range(start, min(start + CHUNK, n))]
            conversations = [
                [
                    {
                        "from": "human",
                        "value": f"Problem {i}. Given n integers, print their sum modulo {i % 997 + 2}. "
                        "Input: the first line holds n, the second the integers. Output: one integer. " * 2,
                    },
                    {"from": "gpt", "value": GPT_TURN},
                ]
                for i in ids
            ]
            table = pa.table(
                {
                    "difficulty": [i % 10 for i in ids],
                    "source": ["codeforces"] * len(ids),
                    "domain": ["code"] * len(ids),
                    "conversations": conversations,
                },
                schema=schema,
            )
            writer.write_table(table)


def query_while(proc: subprocess.Popen, db: Path) -> list[float]:
    """Seconds each read-only query took, one every 0.2 s until `proc` exits."""
    waits = []
    while proc.poll() is None:
        start = time.perf_counter()
        read_query(db, "SELECT count(*) FROM questions")
        waits.append(time.perf_counter() - start)
        time.sleep(0.2)
    return waits


def main(
    rows: int = 1_000_000,
    reader: bool = typer.Option(False, help="query the warehouse meanwhile"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    waits: list[float] = []
    with tempfile.TemporaryDirectory(prefix="tessy-bench-") as tmp:
        data = Path(tmp) / "ot3.parquet"
        write_rows(data, rows)
        db = Path(tmp) / "wh.duckdb"
        with open_warehouse(db):  # created first, so the reader has a file to wait for
            pass
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "tessy.cli", "ingest", str(data), "--db", str(db), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if reader:
            waits = query_while(proc, db)
        stdout, stderr = proc.communicate()
        seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"tessy ingest failed ({proc.returncode}): {stderr[-2000:]}")
    stats = json.loads(stdout.strip().splitlines()[-1])[0]
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "peak_rss_mib": round(peak_mib),
        "ingested": stats["ingested"],
        "duplicates": stats["duplicates"],
        "quarantined": stats["quarantined"],
    }
    if waits:
        result |= {
            "reader_queries": len(waits),
            "reader_max_wait_s": round(max(waits), 2),
            "reader_median_wait_s": round(median(waits), 3),
        }
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>12}: {value}")


if __name__ == "__main__":
    typer.run(main)
