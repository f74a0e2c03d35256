"""Ingest throughput: 1,000,000 OpenThoughts3-layout rows as Parquet through `tessy ingest`.

Prints rows/s and the CLI's peak RSS (`--json`: one JSON object). Targets: >= 50,000 rows/s and
peak RSS < 2 GiB on a 2-core machine.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import typer

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


def main(rows: int = 1_000_000, as_json: bool = typer.Option(False, "--json")) -> None:
    with tempfile.TemporaryDirectory(prefix="tessy-bench-") as tmp:
        data = Path(tmp) / "ot3.parquet"
        write_rows(data, rows)
        db = Path(tmp) / "wh.duckdb"
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "tessy.cli", "ingest", str(data), "--db", str(db), "--json"],
            check=True,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - start
    stats = json.loads(out.stdout.strip().splitlines()[-1])[0]
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
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>12}: {value}")


if __name__ == "__main__":
    typer.run(main)
