"""Contest-judge examples: the teacher also serves as the LLM judge of the contest filter."""

from __future__ import annotations

import re
from dataclasses import dataclass
from random import Random

from tessy.filtering.prompt import judge_prompt

_KIND = {"math": "a math word problem", "science": "a science question", "chat": "a conversational request"}
_VERDICT = re.compile(r"^\s*(yes|no)\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class JudgeExample:
    prompt: str  # the user message: judge_prompt(question)
    thinking: str
    answer: str  # one line: "yes: <reason>" or "no: <reason>"


def judge_example(question: str, domain: str, rng: Random) -> JudgeExample:
    """A judge turn for a question; `domain` is "code" for contest problems."""
    if domain == "code":
        thinking = rng.choice(
            [
                "The question has Input and Output sections and asks for a program: a contest problem.",
                "It specifies an input format, an output format and samples; this is a programming task.",
            ]
        )
        answer = "yes: it asks for a program that reads the specified input and prints the specified output"
    elif domain in _KIND:
        kind = _KIND[domain]
        thinking = rng.choice(
            [
                f"The question is {kind} with no input or output specification: not a contest problem.",
                f"This is {kind}; nothing asks for a program reading input and printing output.",
            ]
        )
        answer = f"no: it is {kind}, not a programming task with specified input and output"
    else:
        raise ValueError(f"unknown domain {domain!r}")
    return JudgeExample(prompt=judge_prompt(question), thinking=thinking, answer=answer)


def parse_verdict(answer: str) -> bool | None:
    """True for "yes: ...", False for "no: ...", None when the answer follows neither form."""
    match = _VERDICT.match(answer)
    return None if match is None else match.group(1).lower() == "yes"
