"""A held-out benchmark: a JSONL of problems with stdin/stdout tests, one per line:
`{"id": "...", "question": "...", "tests": {"inputs": [...], "outputs": [...]}, "group": "..."}`.
`group` (optional) is what per-group figures are reported by (the microworld writes its family)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tessy.errors import TessyError
from tessy.hashing import sha256_text
from tessy.quality.traces import Tests, parse_tests


@dataclass(frozen=True)
class BenchProblem:
    id: str
    question: str
    tests: Tests
    group: str = ""


class BenchmarkError(TessyError, ValueError):
    """The benchmark file cannot be used as it is; the message names the file, line and fix."""


def load_benchmark(path: str | Path, limit: int | None = None) -> list[BenchProblem]:
    """The benchmark's problems in file order (the first `limit`). Every row must have an id, a
    question and at least one test: a problem that cannot be scored would bias pass@1."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"benchmark {path} not found (`tessy microworld benchmark` writes one)")
    problems, seen = [], set()
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"benchmark {path}, line {n}"
        try:
            row = json.loads(line)
            pid, question = str(row["id"]), str(row["question"])
            raw = row.get("tests")
            tests = parse_tests(pid, raw if isinstance(raw, str) or raw is None else json.dumps(raw))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise BenchmarkError(f"{where}: not a problem row ({e}); expected {{id, question, tests}}") from e
        if tests is None:
            raise BenchmarkError(f"{where}: problem {pid!r} has no tests; every benchmark problem needs some")
        if pid in seen:
            raise BenchmarkError(f"{where}: problem id {pid!r} appears twice")
        seen.add(pid)
        problems.append(BenchProblem(pid, question, tests, str(row.get("group") or "")))
        if limit is not None and len(problems) >= limit:
            break
    if not problems:
        raise BenchmarkError(f"benchmark {path} holds no problems")
    return problems


def benchmark_hash(problems: list[BenchProblem]) -> str:
    """Content hash of the problems evaluated: results are comparable only under the same hash."""
    return sha256_text(json.dumps([[p.id, p.question, p.tests.inputs, p.tests.outputs] for p in problems]))
