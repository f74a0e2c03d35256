"""Question readers for the published dataset schemas (OpenThoughts, OpenCodeReasoning, Nemotron, generic)."""

from tessy.sources.formats import FORMATS, detect_format
from tessy.sources.readers import read_source
from tessy.sources.records import QUESTION_SCHEMA, Quarantined, SourceBatch, normalize_text, question_id

__all__ = [
    "FORMATS",
    "QUESTION_SCHEMA",
    "Quarantined",
    "SourceBatch",
    "detect_format",
    "normalize_text",
    "question_id",
    "read_source",
]
