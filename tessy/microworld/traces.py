"""Reasoning traces for microworld problems in the student or the teacher style.

A trace's thinking alternates style spans (the style's discourse glue) and capability spans (the
plan clauses of the problem: goal, method, key step, sample check, edge cases, complexity,
implementation, then the code drafted in full). Both styles draw the capability from the same
plan; the student follows the buggy key step and code on a controlled share of the harder
families, so it is the weaker model.
Whitespace before a span belongs to that span, matching byte-level BPE tokens that carry their
leading space.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from random import Random

from tessy.microworld.records import Problem
from tessy.microworld.styles import CLOSERS, FILLERS, OPENERS, STEPS, Style

# Chance that the student writes the buggy solution, by family difficulty.
STUDENT_BUG_RATE = {1: 0.0, 2: 1.0, 3: 1.0}
FILLER_RATE = 0.25  # chance of a student hesitation before a step
PARAGRAPH_RATE = 0.4  # chance that a student step starts a new paragraph
# Chance that a student step right after a teacher step starts on the teacher's line break: TESSY
# hands over after the teacher's finished line, so the student's opener follows a single newline.
HANDOVER_NEWLINE_RATE = 0.5


@dataclass(frozen=True)
class Trace:
    style: Style
    thinking: str
    answer: str
    style_spans: tuple[tuple[int, int], ...]  # [start, end) character offsets into `thinking`
    buggy: bool  # the trace follows the buggy key step and code

    def segments(self) -> list[tuple[str, bool]]:
        """The thinking as consecutive (text, is_style) pieces that concatenate back to it."""
        pieces, pos = [], 0
        for start, end in self.style_spans:
            if start > pos:
                pieces.append((self.thinking[pos:start], False))
            pieces.append((self.thinking[start:end], True))
            pos = end
        if pos < len(self.thinking):
            pieces.append((self.thinking[pos:], False))
        return pieces


def _flat(text: str, sep: str) -> str:
    return sep.join(line.strip() for line in text.strip().splitlines())


def sample_clause(problem: Problem) -> str:
    """The capability clause that checks the plan against the first sample."""
    sample = problem.samples[0]
    shown_in, shown_out = _flat(sample.input, " / "), _flat(sample.output, " ")
    if len(shown_in) <= 40:
        return f"on the first sample, input {shown_in} should give {shown_out}"
    return f"the first sample should give {shown_out}"


def _sentence(opener: str, clause: str) -> str:
    """The capability text after an opener: capitalized when the opener ends a sentence."""
    if opener.endswith((".", "?", "!")):
        clause = clause[0].upper() + clause[1:]
    return f" {clause}."


class _Builder:
    """Appends pieces, merging adjacent pieces of the same kind, and records style offsets."""

    def __init__(self) -> None:
        self.text = ""
        self.spans: list[list[int]] = []

    def add(self, piece: str, is_style: bool) -> None:
        start = len(self.text)
        self.text += piece
        if not is_style:
            return
        if self.spans and self.spans[-1][1] == start:
            self.spans[-1][1] = len(self.text)
        else:
            self.spans.append([start, len(self.text)])


def _answer(problem: Problem, style: Style, code: str, key: str) -> str:
    """The final answer: it carries out the thinking's key step and draft, whichever they were."""
    plan = problem.plan
    if style == "student":
        return f"To solve this, we {plan.method}.\n\n```python\n{code}```"
    return (
        f"**Solution**\n\n{plan.method[0].upper()}{plan.method[1:]}; {key}.\n\n"
        f"```python\n{code}```\n\nComplexity: {plan.complexity}."
    )


def garble(clause: str, others: Sequence[str], rng: Random) -> str:
    """`clause` the way a small teacher garbles one it writes after a hand-over under TESSY: cut short
    and run on into the tail of another clause, a few of its words said again, or only cut short."""
    words = clause.split()
    cut = rng.randint(1, max(1, len(words) - 1))
    kind = rng.randrange(3)
    if kind == 0:
        tail = rng.choice(others).split()
        return " ".join(words[:cut] + tail[rng.randint(1, max(1, len(tail) - 1)) :])
    if kind == 1:
        said = words[max(0, cut - rng.randint(1, 3)) : cut]
        return " ".join(words[:cut] + said * rng.randint(1, 3) + words[cut:])
    return " ".join(words[:cut])


def make_trace(
    problem: Problem,
    style: Style,
    rng: Random,
    bug_rate: float | None = None,
    voices: Sequence[Style] | None = None,
    closer: Style | None = None,
    garbled: Collection[str] = (),
    teacher_clauses: bool = False,
) -> Trace:
    """A reasoning trace for `problem` in `style`.

    `bug_rate` is the chance of following the buggy solution (when the family has one); by default
    `STUDENT_BUG_RATE` for the student and 0 for the teacher. `voices` gives, per step of `STEPS`,
    whose opener (and separator) starts it, for traces that mix the two styles the way TESSY does;
    by default every step is in `style`. The closing line is `closer`'s, by default `style`'s. The
    clauses of the steps in `garbled` are garbled (`garble`); the draft and the answer are not.
    With `teacher_clauses` the teacher writes every clause (TESSY's usual turns) and ends each on
    its own line break, so every student step starts right after one.
    """
    if bug_rate is None:
        bug_rate = STUDENT_BUG_RATE[problem.difficulty] if style == "student" else 0.0
    voices = voices or [style] * len(STEPS)
    buggy = problem.buggy_solution is not None and rng.random() < bug_rate
    code = problem.buggy_solution if buggy else problem.solution
    plan = problem.plan
    key = plan.buggy_key if buggy else plan.key
    clauses = {
        "goal": plan.goal,
        "method": plan.method,
        "key": key,
        "sample": sample_clause(problem),
        "edge": plan.edge,
        "complexity": plan.complexity,
        "implementation": plan.implementation,
    }
    for step in sorted(set(garbled) & clauses.keys(), key=STEPS.index):
        clauses[step] = garble(clauses[step], [c for k, c in clauses.items() if k != step], rng)
    out = _Builder()
    for i, (step, voice) in enumerate(zip(STEPS, voices, strict=True)):
        opener = rng.choice(OPENERS[voice][step])
        if voice == "teacher":
            sep = "\n" if i else ""
        else:
            sep = ("\n\n" if rng.random() < PARAGRAPH_RATE else " ") if i else ""
            if i and voices[i - 1] == "teacher" and rng.random() < HANDOVER_NEWLINE_RATE:
                sep = "\n"
            if i and teacher_clauses:
                sep = "\n"
            if i and rng.random() < FILLER_RATE:
                opener = f"{rng.choice(FILLERS)} {opener}"
        out.add(sep + opener, True)
        out.add(f"\n```python\n{code}```" if step == "draft" else _sentence(opener, clauses[step]), False)
    closer = closer or style
    out.add(("\n" if closer == "teacher" else "\n\n") + rng.choice(CLOSERS[closer]), True)
    return Trace(
        style=style,
        thinking=out.text,
        answer=_answer(problem, style, code, key),
        style_spans=tuple((s, e) for s, e in out.spans),
        buggy=buggy,
    )
