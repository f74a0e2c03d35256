"""Streaming JSON rows out of JSON Lines and JSON files, one bad line never spoiling a file."""

import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import ijson
import orjson

from tessy.sources.inputs import LINE_SUFFIXES
from tessy.sources.records import Quarantined, raw_text

# What a truncated or corrupt file raises part-way through.
READ_ERRORS = (OSError, EOFError, zlib.error, ijson.JSONError, UnicodeDecodeError)


@dataclass
class JsonRows:
    """A chunk of parsed rows (dicts) with their positions, plus the lines that did not parse."""

    file: str
    sep: str  # ":" before a 1-based line number, "#" before a 0-based row index
    rows: list[dict] = field(default_factory=list)
    keys: list[int] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    n_read: int = 0

    def reject(self, source: str, key: int | None, reason: str, raw: object) -> None:
        locator = self.file if key is None else f"{self.file}{self.sep}{key}"
        self.quarantined.append(Quarantined(source, locator, reason, raw_text(raw)))
        self.n_read += 1


def _open(path: str) -> BinaryIO:
    return gzip.open(path, "rb") if path.lower().endswith(".gz") else open(path, "rb")


def iter_json_rows(path: str, source: str, batch_rows: int) -> Iterator[JsonRows]:
    """Chunks of at most `batch_rows` rows from a JSON Lines or JSON file."""
    if path.lower().endswith(LINE_SUFFIXES):
        return _iter_lines(path, source, batch_rows)
    return _iter_array(path, source, batch_rows)


def _iter_lines(path: str, source: str, batch_rows: int) -> Iterator[JsonRows]:
    chunk = JsonRows(path, ":")
    line_no = 0
    try:
        with _open(path) as f:
            for line_no, line in enumerate(f, 1):
                if line.isspace():
                    continue  # blank lines are not rows
                reason = None
                try:
                    row = orjson.loads(line.decode("utf-8"))
                except UnicodeDecodeError as err:
                    reason = f"invalid UTF-8: {err}"
                except orjson.JSONDecodeError as err:
                    reason = f"malformed JSON: {err}"
                else:
                    if not isinstance(row, dict):
                        reason = f"JSON line is not an object (got {type(row).__name__})"
                if reason is None:
                    chunk.rows.append(row)
                    chunk.keys.append(line_no)
                    chunk.n_read += 1
                else:
                    chunk.reject(source, line_no, reason, line.rstrip(b"\r\n"))
                if chunk.n_read >= batch_rows:
                    yield chunk
                    chunk = JsonRows(path, ":")
    except READ_ERRORS as err:
        chunk.reject(source, line_no + 1, f"cannot read the file from line {line_no + 1} on: {err}", "")
    if chunk.n_read:
        yield chunk


def _rows_prefix(path: str) -> str:
    """ijson prefix of the rows: a top-level array, or the first list inside a top-level object."""
    with _open(path) as f:
        events = ijson.parse(f)
        _, event, _ = next(events, ("", None, None))
        if event == "start_array":
            return "item"
        if event == "start_map":
            key = None
            for prefix, event, value in events:
                if prefix == "" and event == "map_key":
                    key = value
                elif prefix == key and event == "start_array":
                    return f"{key}.item"
    raise ValueError("holds neither an array of rows nor an object with a list of rows")


def _iter_array(path: str, source: str, batch_rows: int) -> Iterator[JsonRows]:
    chunk = JsonRows(path, "#")
    try:
        prefix = _rows_prefix(path)
    except (*READ_ERRORS, ValueError) as err:
        chunk.reject(source, None, f"cannot read JSON rows: {err}", "")
        yield chunk
        return
    row = 0  # index of the row being parsed
    try:
        with _open(path) as f:
            for item in ijson.items(f, prefix, use_float=True):
                if isinstance(item, dict):
                    chunk.rows.append(item)
                    chunk.keys.append(row)
                    chunk.n_read += 1
                else:
                    chunk.reject(source, row, f"row is not a JSON object (got {type(item).__name__})", item)
                if chunk.n_read >= batch_rows:
                    yield chunk
                    chunk = JsonRows(path, "#")
                row += 1
    except READ_ERRORS as err:
        chunk.reject(source, row, f"cannot read the file from row {row} on: {err}", "")
    if chunk.n_read:
        yield chunk
