"""Parquet shards of finished traces. Many workers write shards; one loader moves them into the
warehouse and then into `loaded/`. A shard appears atomically (temp file + rename), so a crash never
leaves half a shard."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tessy.synthesis.records import Trace

_SPAN = pa.struct([("author", pa.string()), ("text", pa.string()), ("n_tokens", pa.int64())])
_COST = pa.struct(
    [
        ("author", pa.string()),
        ("generated", pa.int64()),
        ("wasted", pa.int64()),
        ("requests", pa.int64()),
        ("failed", pa.int64()),
    ]
)
SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("question_id", pa.string()),
        ("method", pa.string()),
        ("student_model", pa.string()),
        ("teacher_model", pa.string()),
        ("predictor_ids", pa.string()),
        ("text", pa.string()),
        ("answer", pa.string()),
        ("spans", pa.list_(_SPAN)),
        ("n_tokens", pa.int64()),
        ("n_tokens_teacher", pa.int64()),
        ("n_tokens_student", pa.int64()),
        ("n_switches", pa.int64()),
        ("n_wasted_tokens", pa.int64()),
        ("n_generated_tokens", pa.int64()),  # null in shards written before it was counted
        ("n_failed_tokens", pa.int64()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("attempts", pa.int64()),
        ("cost", pa.list_(_COST)),
    ]
)


def shard_paths(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.parquet"))


LOADED = "loaded"  # the subfolder of shards already in the warehouse


def archive_shards(directory: Path, names: set[str]) -> None:
    """Move loaded shards (by file name) into `directory/loaded/`, out of the way of the next run."""
    paths = [p for p in shard_paths(directory) if p.name in names]
    if paths:
        (directory / LOADED).mkdir(exist_ok=True)
    for path in paths:
        os.replace(path, directory / LOADED / path.name)


def finished_ids(directory: Path) -> set[str]:
    """Trace ids already written to shards in `directory` and not loaded yet: a resumed run's own."""
    ids: set[str] = set()
    for path in shard_paths(directory):
        ids.update(pq.read_table(path, columns=["trace_id"]).column("trace_id").to_pylist())
    return ids


def read_shards(
    directory: Path, skip: set[str] | frozenset[str] = frozenset()
) -> tuple[pa.Table, list[Path]]:
    """The traces of the shards in `directory` whose file names are not in `skip`, and those files."""
    paths = [p for p in shard_paths(directory) if p.name not in skip]
    tables = [pq.read_table(p, schema=SCHEMA) for p in paths]
    return (pa.concat_tables(tables) if tables else SCHEMA.empty_table()), paths


class ShardWriter:
    """Buffers finished traces and writes a shard every `shard_size` of them."""

    def __init__(self, directory: Path, shard_size: int = 64):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        self.buffer: list[Trace] = []
        self.written = 0

    def add(self, trace: Trace) -> None:
        self.buffer.append(trace)
        if len(self.buffer) >= self.shard_size:
            self.flush()

    def flush(self) -> Path | None:
        if not self.buffer:
            return None
        table = pa.Table.from_pylist([t.row() for t in self.buffer], schema=SCHEMA)
        final = self.directory / f"shard-{uuid.uuid4().hex}.parquet"
        tmp = final.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, final)
        self.written += len(self.buffer)
        self.buffer = []
        return final
