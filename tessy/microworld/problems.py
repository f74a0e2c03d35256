"""Seeded, deterministic generator of microworld questions, split by content into train and eval.

A question belongs to the eval split when the sha256 of its text falls in a fixed 10% bucket, so the
two splits are disjoint by content whatever seeds produced them. `export_questions` writes questions
as JSONL in the OpenThoughts-114k `metadata` schema so ingestion treats them like real data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from random import Random
from typing import Literal

from tessy.microworld.families import FAMILIES, Draft, Family
from tessy.microworld.negatives import DOMAINS, OtherQuestion, draw_other
from tessy.microworld.records import Problem, TestCase
from tessy.microworld.traces import make_trace

Split = Literal["train", "eval"]
EVAL_BUCKETS = 10  # one bucket in ten is held out
N_HIDDEN = 10  # hidden tests per problem, samples and edge cases included
MAX_ATTEMPTS = 10_000  # per question, to find one that falls in the requested split


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def split_of(text: str) -> Split:
    """The split a question text belongs to."""
    return "eval" if int(_digest(text)[:8], 16) % EVAL_BUCKETS == 0 else "train"


def _examples(samples: list[TestCase], rng: Random) -> str:
    if rng.random() < 0.5:
        return "\n\n".join(
            f"Example {i}\nInput:\n{s.input.rstrip()}\nOutput:\n{s.output.rstrip()}"
            for i, s in enumerate(samples, 1)
        )
    return "\n\n".join(
        f"Sample Input {i}\n{s.input.rstrip()}\n\nSample Output {i}\n{s.output.rstrip()}"
        for i, s in enumerate(samples, 1)
    )


def _statement(draft: Draft, samples: list[TestCase], rng: Random) -> str:
    input_head, output_head = rng.choice([("Input", "Output"), ("Input Format", "Output Format")])
    constraints = "\n".join(f"- {c}" for c in draft.constraints)
    return (
        f"{draft.title}\n\n{draft.legend}\n\n{input_head}\n{draft.input_format}\n\n"
        f"{output_head}\n{draft.output_format}\n\nConstraints\n{constraints}\n\n{_examples(samples, rng)}"
    )


def draw_problem(family: Family, rng: Random) -> Problem:
    """One problem of `family`: surface, samples and hidden tests all drawn from `rng`."""
    draft = family.draw(rng)
    samples = [TestCase(*draft.cases(rng, True)) for _ in range(rng.choice([1, 2]))]
    tests = list(dict.fromkeys([*samples, *(TestCase(*c) for c in draft.edge_cases)]))
    for _ in range(100 * N_HIDDEN):
        if len(tests) >= N_HIDDEN:
            break
        case = TestCase(*draft.cases(rng, False))
        if case not in tests:
            tests.append(case)
    statement = _statement(draft, samples, rng)
    return Problem(
        id=f"mw-{_digest(statement)[:16]}",
        family=family.name,
        difficulty=family.difficulty,
        title=draft.title,
        statement=statement,
        solution=draft.code,
        buggy_solution=draft.buggy_code,
        plan=draft.plan,
        samples=tuple(samples),
        tests=tuple(tests),
    )


def generate_problems(n: int, seed: int = 0, split: Split = "train") -> list[Problem]:
    """`n` problems of `split`, cycling through the families in a fixed order (balanced by family)."""
    problems = []
    for k in range(n):
        family = FAMILIES[k % len(FAMILIES)]
        for attempt in range(MAX_ATTEMPTS):
            problem = draw_problem(family, Random(f"microworld/{seed}/{family.name}/{k}/{attempt}"))
            if split_of(problem.statement) == split:
                problems.append(problem)
                break
        else:
            raise RuntimeError(f"no {split} problem of family {family.name} in {MAX_ATTEMPTS} attempts")
    return problems


def generate_others(n: int, seed: int = 0, split: Split = "train") -> list[OtherQuestion]:
    """`n` non-contest questions of `split`, cycling through the domains."""
    questions = []
    for k in range(n):
        domain = DOMAINS[k % len(DOMAINS)]
        for attempt in range(MAX_ATTEMPTS):
            question = draw_other(Random(f"microworld-other/{seed}/{domain}/{k}/{attempt}"), domain)
            if split_of(question.text) == split:
                questions.append(question)
                break
        else:
            raise RuntimeError(f"no {split} {domain} question in {MAX_ATTEMPTS} attempts")
    return questions


def _contest_row(problem: Problem, seed: int) -> dict:
    trace = make_trace(problem, "student", Random(f"export/{seed}/{problem.id}"), bug_rate=0.0)
    tests = {"inputs": [t.input for t in problem.tests], "outputs": [t.output for t in problem.tests]}
    return {
        "problem": problem.statement,
        "deepseek_reasoning": trace.thinking,
        "deepseek_solution": trace.answer,
        "ground_truth_solution": problem.solution,
        "domain": "code",
        "source": "microworld",
        "test_cases": json.dumps(tests),
        "starter_code": "",
    }


def _other_row(question: OtherQuestion) -> dict:
    return {
        "problem": question.text,
        "deepseek_reasoning": question.reasoning,
        "deepseek_solution": question.answer,
        "ground_truth_solution": question.answer,
        "domain": question.domain,
        "source": "microworld",
        "test_cases": "",
        "starter_code": "",
    }


def export_questions(path: Path, n_contest: int, n_other: int, seed: int = 0, split: Split = "eval") -> Path:
    """Write contest and non-contest questions as OpenThoughts-114k `metadata` JSONL rows.

    Defaults to the eval split, so the exported questions are unseen by the microworld models.
    """
    rows = [_contest_row(p, seed) for p in generate_problems(n_contest, seed, split)]
    rows += [_other_row(q) for q in generate_others(n_other, seed, split)]
    Random(f"export-order/{seed}").shuffle(rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def export_benchmark(path: Path, n: int, seed: int = 1) -> Path:
    """Write `n` held-out contest problems as a benchmark JSONL (tessy/evaluation/benchmark.py): the
    statement, its hidden tests, and its family as the group. The seed differs from the questions'
    export by default, so synthesis and evaluation draw different problems."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for p in generate_problems(n, seed, "eval"):
            tests = {"inputs": [t.input for t in p.tests], "outputs": [t.output for t in p.tests]}
            row = {"id": p.id, "question": p.statement, "tests": tests, "group": p.family}
            f.write(json.dumps(row) + "\n")
    return path
