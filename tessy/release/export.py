"""Export a release's rows as Hub-style Parquet shards `data/<config>/train-0000N-of-0000M.parquet`,
with a `messages` column ready for SFT, and a content hash of the rows. Rows stream in, batch by batch
in trace_id order, so a release of any size is never one table in memory."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from tessy.quality.traces import require_columns

SFT_COLUMNS = ("trace_id", "question", "text")
# What a release row holds; run ids and retry counts are bookkeeping, not data, so they stay out of
# the content hash: the same traces give the same hash whichever run made them.
RELEASE_COLUMNS = [
    "trace_id",
    "question_id",
    "method",
    "question",
    "text",
    "answer",
    "student_model",
    "teacher_model",
    "predictor_ids",
    "n_tokens",
    "n_tokens_teacher",
    "n_tokens_student",
    "n_switches",
    "test_cases",
]


@dataclass(frozen=True)
class Export:
    folder: Path
    config: str
    files: list[Path]  # relative to folder
    n_rows: int
    content_hash: str


def with_messages(rows: pl.DataFrame) -> pl.DataFrame:
    """The rows with the SFT conversation
    `[{"role": "user", "content": question}, {"role": "assistant", "content": text}]`."""
    messages = pl.concat_list(
        pl.struct(role=pl.lit("user"), content=pl.col("question")),
        pl.struct(role=pl.lit("assistant"), content=pl.col("text")),
    )
    return rows.with_columns(messages=messages)


class RowHash:
    """sha256 over the canonical JSON of each row, fed in trace_id order batch by batch: the same rows
    give the same hash, however they are sharded or batched."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def update(self, rows: pl.DataFrame) -> None:
        for row in rows.iter_rows(named=True):
            line = json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
            self._digest.update(line.encode())
            self._digest.update(b"\n")

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def content_hash(rows: pl.DataFrame) -> str:
    """The content hash of rows in any order."""
    digest = RowHash()
    digest.update(rows.sort("trace_id"))
    return digest.hexdigest()


def files_hash(folder: Path, files: list[str]) -> str:
    """The content hash of exported files as they are on disk now, read one file at a time in their
    order ("" when one is missing or broken): what the export reported for them, unless they changed."""
    digest = RowHash()
    try:
        for f in files:
            digest.update(pl.read_parquet(folder / f).sort("trace_id"))
    except (OSError, pl.exceptions.PolarsError):
        return ""
    return digest.hexdigest()


class ReleaseWriter:
    """Writes `n_rows` release rows, fed in ascending trace_id order in batches of any size, into
    `max_rows_per_shard`-row shards in a staging folder beside `folder/data/<config>/`, and hashes them
    on the way. `commit` swaps the shards in (replacing an earlier export of that config, which holds
    the same rows if the release is the same), so a reader never sees half an export; `discard`
    removes them, and the folders the writer made if they hold nothing else."""

    def __init__(
        self, folder: str | Path, n_rows: int, *, config: str = "default", max_rows_per_shard: int = 10_000
    ):
        if max_rows_per_shard < 1:
            raise ValueError(f"max_rows_per_shard must be positive, got {max_rows_per_shard}")
        if not config or "/" in config or config.startswith("."):
            raise ValueError(f"bad config name {config!r}")
        if n_rows < 1:
            raise ValueError("a release needs at least one row")
        self.folder, self.config, self.n_rows = Path(folder), config, n_rows
        self.target = self.folder / "data" / config
        self.staging = self.target.with_name(f".{config}.partial")
        self.per_shard = max_rows_per_shard
        self.n_shards = math.ceil(n_rows / max_rows_per_shard)
        self.names: list[str] = []
        self._hash = RowHash()
        self._written = 0
        self._last_id: str | None = None
        self._shard: pq.ParquetWriter | None = None
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)

    def write(self, rows: pl.DataFrame) -> None:
        """Write the next rows (RELEASE_COLUMNS or any columns with SFT_COLUMNS), which must follow the
        ones written before in trace_id order."""
        require_columns(rows, SFT_COLUMNS, "a release")
        ids = rows["trace_id"]
        if rows.height == 0:
            return
        if (
            ids.null_count()
            or not ids.is_sorted()
            or ids.n_unique() != rows.height
            or (self._last_id is not None and ids[0] <= self._last_id)
        ):
            raise ValueError("a release's rows must come in ascending trace_id order, unique and not null")
        if self._written + rows.height > self.n_rows:
            raise ValueError(f"more rows than the {self.n_rows} the release was opened for")
        rows = with_messages(rows)
        self._hash.update(rows)
        self._last_id = ids[-1]
        while rows.height:
            room = self.per_shard - self._written % self.per_shard
            self._append(rows.head(room))
            rows = rows.slice(room)

    def _append(self, rows: pl.DataFrame) -> None:
        if self._written % self.per_shard == 0:
            name = f"train-{len(self.names):05d}-of-{self.n_shards:05d}.parquet"
            self.names.append(name)
            table = rows.to_arrow()
            self._shard = pq.ParquetWriter(self.staging / name, table.schema, compression="zstd")
        else:
            table = rows.to_arrow().cast(self._shard.schema)
        self._shard.write_table(table)
        self._written += rows.height
        if self._written % self.per_shard == 0 or self._written == self.n_rows:
            self._shard.close()
            self._shard = None

    @property
    def content_hash(self) -> str:
        """The hash of all the rows; only once they are all written."""
        if self._written != self.n_rows:
            raise ValueError(f"{self._written} of the release's {self.n_rows} rows were written")
        return self._hash.hexdigest()

    def commit(self) -> Export:
        digest = self.content_hash
        shutil.rmtree(self.target, ignore_errors=True)
        self.staging.rename(self.target)
        return Export(
            folder=self.folder,
            config=self.config,
            files=[self.target.relative_to(self.folder) / n for n in self.names],
            n_rows=self.n_rows,
            content_hash=digest,
        )

    def discard(self) -> None:
        if self._shard is not None:
            self._shard.close()
        shutil.rmtree(self.staging, ignore_errors=True)
        for empty in (self.staging.parent, self.folder):
            with contextlib.suppress(OSError):
                empty.rmdir()


def export_release(
    frame: pl.DataFrame, folder: str | Path, *, config: str = "default", max_rows_per_shard: int = 10_000
) -> Export:
    """Write the rows of a frame in memory, in any order, into `folder/data/<config>/` and return the
    files and content hash."""
    require_columns(frame, SFT_COLUMNS, "a release")
    writer = ReleaseWriter(folder, frame.height, config=config, max_rows_per_shard=max_rows_per_shard)
    try:
        writer.write(frame.sort("trace_id"))
    except BaseException:
        writer.discard()
        raise
    return writer.commit()
