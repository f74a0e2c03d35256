"""The trace frame QA works on (one row per trace, joined with its question) and reading it:
column checks, the thinking of a response, a question's tests."""

from __future__ import annotations

import json
from dataclasses import dataclass

import polars as pl

from tessy.quality.code_exec import extract_code
from tessy.templates import QWEN3

METHODS = ("tessy", "teacher-only", "student-only", "teacher-think", "teacher-answer")
REFERENCE_METHOD = "student-only"


def require_columns(frame: pl.DataFrame, columns: tuple[str, ...] | list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} needs columns {missing}; the frame has {frame.columns}")


def ok_traces(frame: pl.DataFrame) -> pl.DataFrame:
    """Traces that finished; failed ones carry no text and only count as failures."""
    require_columns(frame, ["status"], "QA")
    return frame.filter(pl.col("status") == "ok")


def thinking_of(text: str) -> str:
    """The thinking of a response `<think>\\n{thinking}\\n</think>\\n\\n{answer}`; a response without the
    closing marker is all thinking (the gate flags its format separately)."""
    thinking, _ = QWEN3.split_thinking(text)
    return thinking.removeprefix("<think>").strip()


@dataclass(frozen=True)
class Tests:
    inputs: list[str]
    outputs: list[str]


def parse_tests(question_id: str, test_cases: str | None) -> Tests | None:
    """A question's stdin/stdout tests from `{"inputs": [...], "outputs": [...]}`, None if it has none."""
    if test_cases is None or not test_cases.strip():
        return None
    try:
        raw = json.loads(test_cases)
        tests = Tests([str(x) for x in raw["inputs"]], [str(x) for x in raw["outputs"]])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(
            f"question {question_id}: test_cases is not {{'inputs', 'outputs'}} JSON: {e}"
        ) from e
    if len(tests.inputs) != len(tests.outputs):
        raise ValueError(
            f"question {question_id}: {len(tests.inputs)} test inputs but {len(tests.outputs)} outputs"
        )
    return tests if tests.inputs else None


def has_tests(rows: pl.DataFrame) -> list[bool]:
    """Per row (with question_id and test_cases): whether its question has tests."""
    return [parse_tests(q, c) is not None for q, c in rows.select("question_id", "test_cases").iter_rows()]


def answer_present(answer: str | None, is_code: bool) -> bool:
    """A non-empty answer; for a question with tests, one with a fenced code block."""
    if answer is None or not answer.strip():
        return False
    return extract_code(answer) is not None if is_code else True
