"""Parquet batches with pyarrow: decoded one batch ahead, rows with invalid UTF-8 flagged."""

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from tessy.sources.prefetch import prefetched

# What pyarrow raises for unreadable Parquet (ArrowIOError is an OSError).
PARQUET_ERRORS = (pa.ArrowException, OSError)


def open_parquet(path: str) -> pq.ParquetFile:
    # pre_buffer=False: buffering whole row groups ahead costs memory and, here, time.
    return pq.ParquetFile(path, pre_buffer=False)


def iter_batches(
    parquet: pq.ParquetFile, columns: list[str] | None, batch_rows: int
) -> Iterator[tuple[pa.RecordBatch, list[int]]]:
    """Batches of `columns` (None: all), each with the indexes of its rows that are not valid UTF-8.

    Decoding runs in one worker thread, overlapping with the caller's work on the previous batch.
    """
    batches = parquet.iter_batches(batch_size=batch_rows, columns=columns, use_threads=False)
    return prefetched((batch, _invalid_utf8_rows(batch)) for batch in batches)


def _invalid_utf8_rows(batch: pa.RecordBatch) -> list[int]:
    # Parquet readers do not check that strings are UTF-8, and polars cannot hold ones that are not.
    if _is_valid(batch):
        return []
    return [
        i for i in range(batch.num_rows) if not _is_valid(batch.take([i]))
    ]  # a slice shares the bad buffer


def _is_valid(batch: pa.RecordBatch) -> bool:
    try:
        batch.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def row_text(batch: pa.RecordBatch, index: int) -> str:
    """Row `index` as pyarrow prints it, which shows invalid UTF-8 as U+FFFD."""
    row = pa.Table.from_batches([batch.take([index])])
    return row.to_string(preview_cols=row.num_columns).split("\n----\n", 1)[-1]
