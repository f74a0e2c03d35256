"""Export a release's rows as Hub-style Parquet shards `data/<config>/train-0000N-of-0000M.parquet`,
with a `messages` column ready for SFT, and a content hash of the rows."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl

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


def release_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """The rows in release order (by trace_id) with the SFT conversation
    `[{"role": "user", "content": question}, {"role": "assistant", "content": text}]`."""
    require_columns(frame, SFT_COLUMNS, "a release")
    if frame.height == 0:
        raise ValueError("a release needs at least one row")
    if frame["trace_id"].n_unique() != frame.height or frame["trace_id"].null_count():
        raise ValueError("a release's trace_id values must be unique and not null")
    messages = pl.concat_list(
        pl.struct(role=pl.lit("user"), content=pl.col("question")),
        pl.struct(role=pl.lit("assistant"), content=pl.col("text")),
    )
    return frame.sort("trace_id").with_columns(messages=messages)


def content_hash(rows: pl.DataFrame) -> str:
    """sha256 over the canonical JSON of each row in trace_id order: the same rows give the same hash,
    however they are sharded or ordered on input."""
    digest = hashlib.sha256()
    for row in rows.sort("trace_id").iter_rows(named=True):
        digest.update(
            json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode()
        )
        digest.update(b"\n")
    return digest.hexdigest()


def files_hash(folder: Path, files: list[str]) -> str:
    """The content hash of exported files as they are on disk now ("" when one is missing or broken):
    what `export_release` reported for them, unless they changed since."""
    try:
        return content_hash(pl.concat([pl.read_parquet(folder / f) for f in files]))
    except (OSError, pl.exceptions.PolarsError):
        return ""


def export_release(
    frame: pl.DataFrame, folder: str | Path, *, config: str = "default", max_rows_per_shard: int = 10_000
) -> Export:
    """Write the rows into `folder/data/<config>/` (replacing an earlier export of that config, which
    holds the same rows if the release is the same) and return the files and content hash."""
    if max_rows_per_shard < 1:
        raise ValueError(f"max_rows_per_shard must be positive, got {max_rows_per_shard}")
    if not config or "/" in config or config.startswith("."):
        raise ValueError(f"bad config name {config!r}")
    rows = release_rows(frame)
    folder = Path(folder)
    target = folder / "data" / config
    # Shards are written to a sibling folder and swapped in, so a reader never sees half an export.
    staging = target.with_name(f".{config}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    n_shards = math.ceil(rows.height / max_rows_per_shard)
    names = []
    for i in range(n_shards):
        name = f"train-{i:05d}-of-{n_shards:05d}.parquet"
        rows.slice(i * max_rows_per_shard, max_rows_per_shard).write_parquet(staging / name)
        names.append(name)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return Export(
        folder=folder,
        config=config,
        files=[target.relative_to(folder) / n for n in names],
        n_rows=rows.height,
        content_hash=content_hash(rows),
    )
