"""Records of the microworld: contest problems and their tests."""

from __future__ import annotations

from dataclasses import dataclass

from tessy.microworld.families import Plan


@dataclass(frozen=True)
class TestCase:
    input: str
    output: str


@dataclass(frozen=True)
class Problem:
    id: str  # "mw-" + sha256 of the statement
    family: str
    difficulty: int  # 1 easy .. 3 hard
    title: str
    statement: str  # the full contest text: what a model is asked
    solution: str  # reference program, stdin -> stdout
    buggy_solution: str | None  # the student's typical mistake; None for easy families
    plan: Plan
    samples: tuple[TestCase, ...]
    tests: tuple[TestCase, ...]  # hidden tests (include the samples and the bug-catching edge cases)
