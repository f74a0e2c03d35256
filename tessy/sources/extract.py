"""Vectorized extraction of questions from a table of rows in a known format.

Polars does the column work (finding the first user turn, ids, metadata JSON); Python only
normalizes, validates and hashes the question strings.
"""

import hashlib
from collections.abc import Callable

import polars as pl
import pyarrow as pa

from tessy.sources.formats import Field, FirstTurn, Plan, Question
from tessy.sources.records import QUESTION_SCHEMA, Quarantined, normalize_text, raw_text


def question_expr(question: Question, schema: pl.Schema) -> pl.Expr | str:
    """An expression for the question value, or the reason no row of this schema can have one."""
    if question.column not in schema:
        return f"no question: column '{question.column}' is missing"
    if isinstance(question, FirstTurn):
        return _first_turn_expr(question, schema[question.column])
    return _field_expr(question, schema)


def _first_turn_expr(turn: FirstTurn, dtype: pl.DataType) -> pl.Expr | str:
    if dtype == pl.Null or (isinstance(dtype, pl.List) and dtype.inner == pl.Null):
        return pl.lit(None, pl.String)  # no turns at all in these rows
    fields = (
        dtype.inner.to_schema() if isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct) else {}
    )
    if turn.role_key not in fields or turn.text_key not in fields:
        return (
            f"no question: '{turn.column}' is {dtype}, "
            f"not a list of {{{turn.role_key}, {turn.text_key}}} messages"
        )
    if fields[turn.role_key] not in (pl.String, pl.Null):
        return f"no question: '{turn.column}' roles are {fields[turn.role_key]}, not strings"
    turns = pl.col(turn.column).list.filter(pl.element().struct.field(turn.role_key) == turn.role)
    return turns.list.first().struct.field(turn.text_key)


def _field_expr(field: Field, schema: pl.Schema) -> pl.Expr | str:
    column, *steps = field.path
    expr, dtype, walked = pl.col(str(column)), schema[str(column)], str(column)
    for step in steps:
        if dtype == pl.Null:
            return pl.lit(None, pl.String)
        if isinstance(step, int) and isinstance(dtype, pl.List):
            expr, dtype = expr.list.get(step, null_on_oob=True), dtype.inner
        elif isinstance(step, str) and isinstance(dtype, pl.Struct) and step in dtype.to_schema():
            expr, dtype = expr.struct.field(step), dtype.to_schema()[step]
        else:
            return f"no question: '{walked}' is {dtype}, so '{field.name}' does not exist"
        walked += f"[{step}]" if isinstance(step, int) else f".{step}"
    return expr


def _as_string(column: str | None, schema: pl.Schema) -> pl.Expr:
    if column is None or column not in schema:
        return pl.lit(None, pl.String)
    if schema[column].is_nested():
        # Keep the value as JSON: wrap it in a one-field struct, encode, and cut the wrapper off.
        encoded = pl.struct(pl.col(column).alias("v")).struct.json_encode().str.slice(5).str.head(-1)
        return pl.when(pl.col(column).is_null()).then(None).otherwise(encoded)
    return pl.col(column).cast(pl.String, strict=False)  # e.g. binary that is not UTF-8 -> null


def extract(
    df: pl.DataFrame,
    plan: Plan,
    *,
    source: str,
    file: str,
    sep: str,
    keys: pl.Series,
    max_chars: int,
    raw_row: Callable[[int], object],
) -> tuple[pa.Table, list[Quarantined]]:
    """Questions and quarantine records for the rows of `df`; every row ends up in exactly one.

    `keys` holds each row's position for its locator `{file}{sep}{key}`: a 1-based line number
    (line files) or a 0-based row index; `raw_row(i)` gives row i for a quarantine record.
    """
    locator = pl.concat_str(pl.lit(file + sep), pl.lit(keys).cast(pl.String))
    question = question_expr(plan.question, df.schema)
    metadata = [pl.lit(plan.format).alias("format")]
    metadata += [pl.col(c) for c in plan.metadata_columns if c in df.schema]
    frame = df.select(
        (pl.lit(None, pl.String) if isinstance(question, str) else question).alias("question"),
        pl.coalesce(_as_string(plan.id_column, df.schema), locator).alias("source_id"),
        _as_string(plan.domain_column, df.schema).alias("domain"),
        _as_string(plan.difficulty_column, df.schema).alias("difficulty"),
        pl.struct(metadata).struct.json_encode().alias("metadata_json"),
    )
    missing = question if isinstance(question, str) else plan.question.missing_reason()
    values = frame.get_column("question")
    keep, texts, rejected = _check_questions(values, missing, plan.placeholder, max_chars)
    ids = [hashlib.sha256(text.encode()).hexdigest() for text in texts]
    kept = frame.drop("question")
    if len(keep) < frame.height:
        kept = kept.select(pl.all().gather(keep))
    table = kept.with_columns(
        question_id=pl.Series(ids, dtype=pl.String),
        text=pl.Series(texts, dtype=pl.String),
        source=pl.lit(source, pl.String),
    )
    table = table.select(QUESTION_SCHEMA.names).to_arrow().cast(QUESTION_SCHEMA)
    quarantined = [
        Quarantined(source, f"{file}{sep}{keys[i]}", reason, raw_text(raw_row(i))) for i, reason in rejected
    ]
    return table, quarantined


def _check_questions(
    values: pl.Series, missing: str, placeholder: tuple[str, str] | None, max_chars: int
) -> tuple[list[int], list[str], list[tuple[int, str]]]:
    """Row indexes kept with their normalized texts, and (row index, reason) for the others."""
    keep: list[int] = []
    texts: list[str] = []
    rejected: list[tuple[int, str]] = []
    if values.dtype not in (pl.String, pl.Null):
        wrong = f"question is not a string (got {values.dtype})"
        rejected = [(i, missing if null else wrong) for i, null in enumerate(values.is_null())]
        return keep, texts, rejected
    for i, value in enumerate(values.to_list()):
        if value is None:
            rejected.append((i, missing))
            continue
        if "\x00" in value:
            rejected.append((i, "question contains NUL bytes"))
            continue
        text = normalize_text(value)
        if not text:
            rejected.append((i, "question is empty or whitespace-only"))
        elif placeholder is not None and text == placeholder[0]:
            rejected.append((i, placeholder[1]))
        elif len(text) > max_chars:
            rejected.append((i, f"question is {len(text):,} chars, over max_chars={max_chars:,}"))
        else:
            keep.append(i)
            texts.append(text)
    return keep, texts, rejected
