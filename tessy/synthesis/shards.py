"""Parquet shards of finished traces. Many workers write shards; one loader moves them into the
warehouse and then into `loaded/`. The folder may be a storage URL (tessy/storage.py), shared by parts
on many machines; a shard appears whole, so a crash never leaves half a shard."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa

from tessy.storage import Folder
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
        ("n_generated_tokens", pa.int64()),  # missing from shards written before it was counted
        ("n_failed_tokens", pa.int64()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("attempts", pa.int64()),
        ("cost", pa.list_(_COST)),
        ("recipe", pa.string()),
    ]
)


_LATER = {"n_generated_tokens", "n_failed_tokens", "recipe"}  # columns a shard may lack (written before them)
_KEYS = ("trace_id", "question_id", "method", "status")  # never null in a trace
LOADED = "loaded"  # the subfolder of shards already in the warehouse
QUARANTINE = "quarantine"  # the subfolder of shards that could not be read


def archive_shards(folder: Folder, names: set[str]) -> None:
    """Move loaded shards (by file name) into `loaded/`, out of the way of the next run."""
    for name in set(folder.names()) & names:
        folder.move(name, folder / LOADED)


def finished_ids(folder: Folder) -> set[str]:
    """Trace ids already written to shards in `folder` and not loaded yet: a resumed run's own."""
    ids: set[str] = set()
    for name in folder.names():
        ids.update(folder.read_table(name, columns=["trace_id"]).column("trace_id").to_pylist())
    return ids


def read_shards(
    folder: Folder, skip: set[str] | frozenset[str] = frozenset()
) -> tuple[pa.Table, dict[str, int], dict[str, str]]:
    """The traces of the shards in `folder` whose names are not in `skip`, the traces each of those
    shards holds (name -> rows), and the shards that could not be read as traces (name -> why)."""
    tables, rows, bad = [], {}, {}
    for name in folder.names():
        if name in skip:
            continue
        try:
            tables.append(_as_traces(folder.read_table(name)))
            rows[name] = tables[-1].num_rows
        except (pa.ArrowException, OSError, ValueError) as e:
            bad[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return (pa.concat_tables(tables) if tables else SCHEMA.empty_table()), rows, bad


def _as_traces(table: pa.Table) -> pa.Table:
    """`table` in the shard schema; ValueError when it is not a shard of traces."""
    if missing := [n for n in SCHEMA.names if n not in table.column_names and n not in _LATER]:
        raise ValueError(f"not a trace shard: no column {', '.join(missing)}")
    for name in set(SCHEMA.names) - set(table.column_names):
        table = table.append_column(name, pa.nulls(table.num_rows, SCHEMA.field(name).type))
    if nulls := [k for k in _KEYS if table.column(k).null_count]:
        raise ValueError(f"traces without {', '.join(nulls)}")
    return table.select(SCHEMA.names).cast(SCHEMA)


class ShardWriter:
    """Buffers finished traces and writes a shard every `shard_size` of them into `folder` (a path or
    a storage URL)."""

    def __init__(self, folder: Folder | str | Path, shard_size: int = 64):
        self.folder = folder if isinstance(folder, Folder) else Folder(folder)
        self.shard_size = shard_size
        self.buffer: list[Trace] = []
        self.written = 0

    def add(self, trace: Trace) -> None:
        self.buffer.append(trace)
        if len(self.buffer) >= self.shard_size:
            self.flush()

    def flush(self) -> str | None:
        """Write the buffered traces as one shard; returns its URL."""
        if not self.buffer:
            return None
        table = pa.Table.from_pylist([t.row() for t in self.buffer], schema=SCHEMA)
        url = self.folder.write_table(f"shard-{uuid.uuid4().hex}.parquet", table)
        self.written += len(self.buffer)
        self.buffer = []
        return url
