"""Records produced by the source readers and the text identity every later stage relies on."""

import hashlib
import unicodedata
from dataclasses import dataclass

import orjson
import pyarrow as pa

MAX_RAW_CHARS = 10_000

QUESTION_SCHEMA = pa.schema(
    [
        pa.field("question_id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_id", pa.string(), nullable=False),
        pa.field("domain", pa.string()),
        pa.field("difficulty", pa.string()),
        pa.field("metadata_json", pa.string(), nullable=False),
    ]
)


def normalize_text(text: str) -> str:
    """Unicode NFC, universal newlines, surrounding whitespace stripped."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text).strip()


def question_id(text: str) -> str:
    """Content id of a question: sha256 hex of its normalized text."""
    return hashlib.sha256(normalize_text(text).encode()).hexdigest()


@dataclass(frozen=True)
class Quarantined:
    """An input row (or a whole file) that could not become a question, and why."""

    source: str
    locator: str
    reason: str
    raw: str


@dataclass
class SourceBatch:
    """One batch of rows read from a source: every row read is a question or a quarantine record."""

    questions: pa.Table
    quarantined: list[Quarantined]
    n_read: int


def raw_text(value: object) -> str:
    """A row as a bounded string for the quarantine table."""
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    elif isinstance(value, str):
        text = value
    else:
        text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    return text[:MAX_RAW_CHARS]
