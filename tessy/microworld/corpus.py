"""Training conversations of the microworld models, rendered in each model's chat format."""

from __future__ import annotations

from dataclasses import dataclass, replace
from random import Random

from tessy.microworld.formats import FORMATS
from tessy.microworld.judge import judge_example
from tessy.microworld.problems import generate_others, generate_problems
from tessy.microworld.records import Problem
from tessy.microworld.styles import STEPS, Style, other_style
from tessy.microworld.traces import Trace, make_trace

# Share of training problems whose prompt already holds part of a thinking mixed from both styles,
# as TESSY hands it over: each model learns to continue the other's text in its own style instead
# of treating it as foreign (ending its thinking, or jumping to the answer).
MIXED_RATE: dict[Style, float] = {"student": 0.7, "teacher": 0.35}
# Share of the teacher's problems written the way TESSY writes every step: the student opens each
# one (sometimes writing the first words of its clause too), the teacher writes each clause, the
# draft and the closing line, and only the teacher's text is trained on. A mixed prompt shows the
# teacher one hand-over; TESSY hands over at every step, and after a student opener the teacher ran
# one clause into another ("print the Euclidean algorithm from math.gcd") and drafted a program it
# would write right alone in only 131 of 200 traces (bench/fidelity.py; teacher-think: 187). With
# these traces, 182 of 200, and TESSY solved 0.89 against teacher-only's 0.905. The teacher writes
# each clause's line break (trained): given the student's separators instead, it learned to stop a
# clause at its full stop, and the student, handed a line left open, answered without a draft.
INTERLEAVED_RATE: dict[Style, float] = {"student": 0.0, "teacher": 0.3}
# Chance that a clause of those traces stands garbled and untrained, as a hand-over can leave one:
# the teacher still drafts the right program after it.
GARBLE_RATE = 0.2
# Share of those handed over at the end, as TESSY's last hand-overs are: the teacher writes the draft
# after the student's opener, the student gets the whole thinking and writes the closer and answer.
LATE_RATE: dict[Style, float] = {"student": 0.6, "teacher": 0.5}
# Share of the student's late hand-overs where the teacher has closed the thinking too, as it does under
# TESSY (the teacher ends the thinking): the student writes only the answer, after the teacher's closer.
TEACHER_CLOSER_RATE = 0.7
# Chance that a key step already in the prompt is the buggy one, whatever the family: the model must
# carry out the key and draft it reads, not recall the family's usual answer. The student's own
# traces are buggy on the hard families, so its answers there lean to the bug: with half its given
# drafts buggy (and fewer given ones: mixed 0.5, late 0.5, closed 0.5) it carried out a given correct
# draft on those families 0.81 of the time, and the answer departed from the teacher's correct draft
# in 26 of 200 TESSY traces of bench/fidelity.py; with the rates here, 0.98 (a given buggy draft:
# 0.99 -> 0.91).
GIVEN_BUG_RATE: dict[Style, float] = {"student": 0.25, "teacher": 0.5}
# Share of the teacher's hand-overs cut at a word boundary other than the end of the student's opener:
# TESSY's student predictor may cut after a filler, inside an opener or a few words into a clause,
# and the teacher must carry on that text (it closed its analysis, or looped, on cuts it never saw).
RAGGED_RATE = 0.5
CLAUSE_WORDS = 6  # how far into the clause such a late cut may fall


@dataclass(frozen=True)
class Conversation:
    prompt: str  # rendered prompt up to the opened assistant turn; not trained on
    completion: str  # thinking, answer and end of turn; the training target
    # [start, end) chars of `text` in the completion not trained on: the other model's text, garbled clauses
    untrained: tuple[tuple[int, int], ...] = ()

    @property
    def text(self) -> str:
        return self.prompt + self.completion


def _conversation(style: Style, question: str, thinking: str, answer: str, given: int = 0) -> Conversation:
    """The rendered conversation; the prompt holds the first `given` chars of the thinking."""
    fmt = FORMATS[style]
    prompt = fmt.prompt(question) + thinking[:given]
    return Conversation(prompt, fmt.render(question, thinking, answer)[len(prompt) :])


def mixed_conversation(problem: Problem, style: Style, rng: Random) -> Conversation:
    """A conversation whose prompt ends inside a mixed-style thinking; the target is `style`'s rest.

    The teacher's prefix ends on an opener of the student (TESSY cuts the student after a style
    span) or at another word of that step (where a predictor's cut may fall); the student's right
    after a capability span, sometimes with the teacher's newline, or after the teacher's closer: the
    whole thinking is given and the student answers.
    """
    other = other_style(style)
    last = len(STEPS) - 1 if style == "teacher" else len(STEPS)  # the draft's opener; the closer
    first = 0 if style == "teacher" else 1
    handover = last if rng.random() < LATE_RATE[style] else rng.randrange(first, last + 1)
    voices = [rng.choice((style, other)) for _ in range(handover)]
    if style == "teacher":
        voices.append(other)
    voices += [style] * (len(STEPS) - len(voices))
    key_given = handover > STEPS.index("key")
    closed = style == "student" and handover == last and rng.random() < TEACHER_CLOSER_RATE
    trace = make_trace(
        problem,
        style,
        rng,
        bug_rate=GIVEN_BUG_RATE[style] if key_given else None,
        voices=voices,
        closer=other if closed else None,
    )
    if closed:
        return _conversation(
            style, problem.statement, trace.thinking, trace.answer, given=len(trace.thinking)
        )
    start, end = trace.style_spans[handover]
    cut = end if style == "teacher" else start
    if style == "teacher" and rng.random() < RAGGED_RATE:
        cut = rng.choice(_ragged_cuts(trace, handover))
    prefix, rest = trace.thinking[:cut], trace.thinking[cut:]
    if style == "student" and rng.random() < 0.5:
        prefix, rest = prefix + "\n", rest.lstrip()
    return _conversation(style, problem.statement, prefix + rest, trace.answer, given=len(prefix))


def interleaved_conversation(problem: Problem, rng: Random) -> Conversation:
    """A teacher trace whose every step the student opens, as under TESSY; the student's text (its
    openers and fillers, at RAGGED_RATE also the first words of the clause after one) and the garbled
    clauses are not trained on."""
    garbled = [step for step in STEPS[:-1] if rng.random() < GARBLE_RATE]
    voices: list[Style] = ["student"] * len(STEPS)
    trace = make_trace(problem, "teacher", rng, voices=voices, garbled=garbled, teacher_clauses=True)
    spans = trace.style_spans  # each step's opener, then the closer: a step's clause lies between
    clauses = [(spans[i][1], spans[i + 1][0]) for i in range(len(STEPS))]
    untrained = []
    for step, (start, end) in enumerate(trace.style_spans[:-1]):  # the last is the teacher's closer
        if rng.random() < RAGGED_RATE:
            words = [
                i
                for i in _word_ends(trace.thinking, end, clauses[step][1])
                if "```" not in trace.thinking[end:i]
            ]
            end = rng.choice(words[:CLAUSE_WORDS] or [end])
        untrained.append((start, end))
    untrained += [clauses[STEPS.index(step)] for step in garbled]
    conv = _conversation("teacher", problem.statement, trace.thinking, trace.answer)
    return replace(
        conv, untrained=tuple(sorted((len(conv.prompt) + a, len(conv.prompt) + b) for a, b in untrained))
    )


def _ragged_cuts(trace: Trace, step: int) -> list[int]:
    """Where a predictor may cut the student's step `step`: after any word of its opener or of the
    first words of its clause, never inside a code block (synthesis does not cut there)."""
    text, (start, end) = trace.thinking, trace.style_spans[step]
    step_end = trace.style_spans[step + 1][0] if step + 1 < len(trace.style_spans) else len(text)
    clause = [i for i in _word_ends(text, end, step_end) if "```" not in text[end:i]]
    return _word_ends(text, start, end) + clause[:CLAUSE_WORDS]


def _word_ends(text: str, start: int, end: int) -> list[int]:
    """Offsets in (start, end] where a word ends."""
    return [
        i
        for i in range(start + 1, end + 1)
        if not text[i - 1].isspace() and (i == len(text) or text[i].isspace())
    ]


def conversations(style: Style, n: int, seed: int, n_judge: int = 0) -> list[Conversation]:
    """`n` solved training problems in `style`, plus `n_judge` judge turns, in a seeded order."""
    rng = Random(f"corpus/{style}/{seed}")
    problems = generate_problems(n, seed, "train")
    out = []
    for problem in problems:
        draw = rng.random()
        if draw < INTERLEAVED_RATE[style]:
            out.append(interleaved_conversation(problem, rng))
            continue
        if draw < INTERLEAVED_RATE[style] + MIXED_RATE[style]:
            out.append(mixed_conversation(problem, style, rng))
            continue
        trace = make_trace(problem, style, rng)
        out.append(_conversation(style, problem.statement, trace.thinking, trace.answer))
    contest = [(p.statement, "code") for p in problems[: n_judge // 2]]
    others = [(q.text, q.domain) for q in generate_others(n_judge - len(contest), seed, "train")]
    for question, domain in contest + others:
        example = judge_example(question, domain, rng)
        out.append(_conversation(style, example.prompt, example.thinking, example.answer))
    rng.shuffle(out)
    return out
