"""`read_source`: stream questions out of a file, a directory or a Hub dataset, in batches."""

import os
from collections.abc import Collection, Iterable, Iterator

import numpy as np
import polars as pl
import pyarrow as pa

from tessy.sources.extract import extract
from tessy.sources.formats import FORMATS, Format, Plan, detect_format, get_format, make_plan
from tessy.sources.hub import HUB_PREFIX, iter_hub_splits, parse_hub_uri
from tessy.sources.inputs import is_parquet, list_files
from tessy.sources.json_rows import JsonRows, iter_json_rows
from tessy.sources.parquet import PARQUET_ERRORS, iter_batches, open_parquet, row_text
from tessy.sources.records import QUESTION_SCHEMA, Quarantined, SourceBatch, raw_text


def read_source(
    path: str | os.PathLike[str],
    fmt: str | None = None,
    *,
    question_field: str | None = None,
    max_chars: int = 100_000,
    batch_rows: int = 50_000,
) -> Iterator[SourceBatch]:
    """Stream a source as batches of at most `batch_rows` rows read.

    `fmt` is one of FORMATS or None to detect it per file from its columns; `question_field`
    (implies `generic`) is a dotted path such as `dialogs[0].content`. Caller errors (unknown
    format, missing path) raise here; bad data becomes quarantine records in the batches.
    """
    path = os.fspath(path)
    if batch_rows < 1 or max_chars < 1:
        raise ValueError(f"batch_rows and max_chars must be positive, got {batch_rows} and {max_chars}")
    spec = get_format(fmt or "generic", question_field) if fmt or question_field else None
    if path.startswith(HUB_PREFIX):
        parse_hub_uri(path)
        streams = iter_hub_splits(path, batch_rows)
        return (b for rows in streams for b in _json_batches(rows, path, spec, max_chars))
    return _read_files(list_files(path), path, spec, max_chars, batch_rows)


def _read_files(
    files: list[str], source: str, spec: Format | None, max_chars: int, batch_rows: int
) -> Iterator[SourceBatch]:
    for file in files:
        if is_parquet(file):
            yield from _parquet_batches(file, source, spec, max_chars, batch_rows)
        else:
            yield from _json_batches(iter_json_rows(file, source, batch_rows), source, spec, max_chars)


def _plan(spec: Format | None, columns: Collection[str]) -> Plan | str:
    """The file's plan, or why its rows match no format."""
    name = spec.name if spec else detect_format(columns)
    if name is None:
        return (
            f"unknown schema: columns {sorted(columns)} match no format ({', '.join(FORMATS)}); "
            "pass fmt or question_field"
        )
    return make_plan(spec or get_format(name), columns)


def _unknown_schema(
    reason: str, rows: list, *, source: str, file: str, sep: str, keys: Iterable[int]
) -> list[Quarantined]:
    return [
        Quarantined(source, f"{file}{sep}{key}", reason, raw_text(row))
        for key, row in zip(keys, rows, strict=True)
    ]


def _file_error(source: str, locator: str, reason: str) -> SourceBatch:
    return SourceBatch(QUESTION_SCHEMA.empty_table(), [Quarantined(source, locator, reason, "")], 1)


def _parquet_batches(
    file: str, source: str, spec: Format | None, max_chars: int, batch_rows: int
) -> Iterator[SourceBatch]:
    try:
        parquet = open_parquet(file)
    except PARQUET_ERRORS as err:
        yield _file_error(source, file, f"cannot read Parquet: {err}")
        return
    names = parquet.schema_arrow.names
    plan = _plan(spec, names)
    columns = None if isinstance(plan, str) else [c for c in plan.columns if c in names]
    batches = iter_batches(parquet, columns, batch_rows)
    start = 0
    while True:
        try:
            batch, invalid = next(batches, (None, []))
        except PARQUET_ERRORS as err:
            yield _file_error(source, f"{file}#{start}", f"cannot read Parquet from row {start} on: {err}")
            return
        if batch is None:
            return
        n_read = batch.num_rows
        keys = np.arange(start, start + n_read)
        quarantined = [
            Quarantined(source, f"{file}#{start + i}", "invalid UTF-8 in a string column", row_text(batch, i))
            for i in invalid
        ]
        if invalid:
            keep = np.ones(n_read, dtype=bool)
            keep[invalid] = False
            batch, keys = batch.filter(pa.array(keep)), keys[keep]
        rows = pl.DataFrame(batch)
        if isinstance(plan, str):
            table = QUESTION_SCHEMA.empty_table()
            quarantined += _unknown_schema(
                plan, rows.to_dicts(), source=source, file=file, sep="#", keys=keys
            )
        else:
            table, rejected = extract(
                rows,
                plan,
                source=source,
                file=file,
                sep="#",
                keys=pl.Series(keys),
                max_chars=max_chars,
                raw_row=lambda i, rows=rows: rows.row(i, named=True),
            )
            quarantined += rejected
        yield SourceBatch(table, quarantined, n_read)
        start += n_read


def _json_batches(
    chunks: Iterator[JsonRows], source: str, spec: Format | None, max_chars: int
) -> Iterator[SourceBatch]:
    plan: Plan | str | None = None
    for chunk in chunks:
        if plan is None and chunk.rows:
            # Decided once per file, from every column its first chunk uses.
            plan = _plan(spec, set().union(*chunk.rows))
        tables = [QUESTION_SCHEMA.empty_table()]
        quarantined = list(chunk.quarantined)
        where = {"source": source, "file": chunk.file, "sep": chunk.sep}
        if isinstance(plan, str):
            quarantined += _unknown_schema(plan, chunk.rows, keys=chunk.keys, **where)
        elif plan is not None:
            for lo, hi, part in _to_arrow(chunk.rows, plan.columns):
                if isinstance(part, Exception):
                    reason = f"row values cannot be stored as columns: {part}"
                    locator = f"{chunk.file}{chunk.sep}{chunk.keys[lo]}"
                    quarantined.append(Quarantined(source, locator, reason, raw_text(chunk.rows[lo])))
                    continue
                table, rejected = extract(
                    pl.DataFrame(part),
                    plan,
                    keys=pl.Series(chunk.keys[lo:hi], dtype=pl.Int64),
                    max_chars=max_chars,
                    raw_row=lambda i, lo=lo, rows=chunk.rows: rows[lo + i],
                    **where,
                )
                tables.append(table)
                quarantined += rejected
        yield SourceBatch(pa.concat_tables(tables), quarantined, chunk.n_read)


def _to_arrow(rows: list[dict], columns: tuple[str, ...]) -> list[tuple[int, int, pa.Table | Exception]]:
    """`columns` of `rows` as Arrow tables over row ranges (lo, hi), or the error of a single row.

    JSON rows may disagree on a value's type (a string here, a number there), which no single
    column can hold: such a range is split in halves until each part converts, so one odd row
    costs a few conversions and is quarantined on its own.
    """

    def convert(lo: int, hi: int) -> list[tuple[int, int, pa.Table | Exception]]:
        try:
            return [(lo, hi, pa.table({c: pa.array([row.get(c) for row in rows[lo:hi]]) for c in columns}))]
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as err:
            if hi - lo == 1:
                return [(lo, hi, err)]
            mid = (lo + hi) // 2
            return convert(lo, mid) + convert(mid, hi)

    return convert(0, len(rows)) if rows else []
