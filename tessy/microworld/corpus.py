"""Training conversations of the microworld models, rendered in each model's chat format."""

from __future__ import annotations

from dataclasses import dataclass
from random import Random

from tessy.microworld.formats import FORMATS
from tessy.microworld.judge import judge_example
from tessy.microworld.problems import generate_others, generate_problems
from tessy.microworld.styles import Style
from tessy.microworld.traces import make_trace


@dataclass(frozen=True)
class Conversation:
    prompt: str  # rendered prompt up to the opened assistant turn; not trained on
    completion: str  # thinking, answer and end of turn; the training target

    @property
    def text(self) -> str:
        return self.prompt + self.completion


def _conversation(style: Style, question: str, thinking: str, answer: str) -> Conversation:
    fmt = FORMATS[style]
    prompt = fmt.prompt(question)
    return Conversation(prompt, fmt.render(question, thinking, answer)[len(prompt) :])


def conversations(style: Style, n: int, seed: int, n_judge: int = 0) -> list[Conversation]:
    """`n` solved training problems in `style`, plus `n_judge` judge turns, in a seeded order."""
    rng = Random(f"corpus/{style}/{seed}")
    problems = generate_problems(n, seed, "train")
    out = []
    for problem in problems:
        trace = make_trace(problem, style, rng)
        out.append(_conversation(style, problem.statement, trace.thinking, trace.answer))
    contest = [(p.statement, "code") for p in problems[: n_judge // 2]]
    others = [(q.text, q.domain) for q in generate_others(n_judge - len(contest), seed, "train")]
    for question, domain in contest + others:
        example = judge_example(question, domain, rng)
        out.append(_conversation(style, example.prompt, example.thinking, example.answer))
    rng.shuffle(out)
    return out
