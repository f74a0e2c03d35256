"""Contest filter: the heuristic on clear cases; the LLM judge's parsing and retries, scripted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tessy.engines import Completion, RequestRejected, Sampling
from tessy.filtering.heuristic import heuristic_decision
from tessy.filtering.llm import JudgeConfig, judge_questions, judge_version, parse_verdict
from tessy.filtering.prompt import JUDGE_VERSION
from tessy.templates import GPT_OSS, QWEN3

CONTEST = """Sum of Array

You are given an array of n integers. Print the sum of its elements.

Input
The first line contains an integer n (1 <= n <= 100000). The second line contains n integers a_i.

Output
Print one integer: the sum of the array.

Example
Input
3
1 2 3
Output
6"""

CODEFORCES = r"""You are given a permutation $p$ of length $n$.
-----Input-----
The first line contains a single integer $t$ ($1 \le t \le 10^4$) — the number of test cases.
-----Output-----
For each test case, output a single integer — the answer.
-----Examples-----
Input
1
3
Output
2"""

NOT_CONTEST = [
    "Why is the sky blue during the day but red at sunset?",
    "Prove that the sum of the first n odd numbers equals n^2.",
    "A train travels 120 km in 1.5 hours. What is its average speed?",
    "What are some good habits for staying focused while studying?",
]


@pytest.mark.parametrize("text", [CONTEST, CODEFORCES])
def test_heuristic_accepts_contest_statements(text: str) -> None:
    d = heuristic_decision(text)
    assert d.is_contest is True and d.score is not None and d.score >= 0.8
    assert "input section" in d.rationale and "\n" not in d.rationale
    assert d.filter == "heuristic" and d.filter_version


@pytest.mark.parametrize("text", NOT_CONTEST)
def test_heuristic_rejects_other_questions(text: str) -> None:
    d = heuristic_decision(text)
    assert d.is_contest is False and d.score is not None and d.score < 0.5


def test_heuristic_empty_is_undecided() -> None:
    assert heuristic_decision("  \n").is_contest is None


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("yes: reads n and prints a sum", (True, "reads n and prints a sum")),
        ("No: it is a physics question.", (False, "it is a physics question.")),
        ("\n**Yes** - standard input/output task<|return|>", (True, "standard input/output task")),
        ("Answer: NO, a proof", (False, "a proof")),
        ("Final verdict: yes", (True, "(no reason given)")),
        ("I think yes: maybe\nyes: input and output sections", (True, "input and output sections")),
    ],
)
def test_parse_verdict(answer: str, expected: tuple[bool, str]) -> None:
    v = parse_verdict(answer)
    assert v is not None and (v.is_contest, v.reason) == expected


@pytest.mark.parametrize("answer", ["", "maybe", "Yesterday it was", "yes: input\nno: no output", "nope"])
def test_parse_verdict_rejects_garbage(answer: str) -> None:
    assert parse_verdict(answer) is None


class ScriptedEngine:
    """Answers each prompt with the next scripted reply for its question; records calls."""

    def __init__(self, script: Callable[[str, int], str], delay: float = 0.0) -> None:
        self.script = script
        self.delay = delay
        self.calls: list[tuple[str, Sampling]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def complete(self, prompt: str, params: Sampling, *, until=None) -> Completion:
        self.calls.append((prompt, params))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            text = self.script(prompt, len(self.calls))
        finally:
            self.in_flight -= 1
        if text.startswith("!"):
            raise RequestRejected(text[1:])
        return Completion(text, len(text.split()), "stop", "scripted")


def _judge(engine, family=QWEN3, texts=(CONTEST,), **config) -> list:
    version = judge_version(family.name, "m")
    config = JudgeConfig(**config)
    return asyncio.run(judge_questions(engine, family, list(texts), version=version, config=config))


def test_judge_reads_answer_after_thinking() -> None:
    engine = ScriptedEngine(lambda p, n: "Okay, input and output.\n</think>\n\nyes: stdin/stdout task")
    [d] = _judge(engine)
    assert (d.is_contest, d.score, d.rationale) == (True, 1.0, "stdin/stdout task")
    assert d.filter == "llm" and JUDGE_VERSION in d.filter_version and "qwen3" in d.filter_version
    prompt, params = engine.calls[0]
    assert prompt.startswith("<|im_start|>user\nIs the following question") and prompt.endswith("<think>\n")
    assert params.seed == 0


def test_judge_gpt_oss_reads_final_channel() -> None:
    engine = ScriptedEngine(lambda p, n: "Physics, no I/O.assistantfinalno: a physics question")
    [d] = _judge(engine, family=GPT_OSS)
    assert (d.is_contest, d.rationale) == (False, "a physics question")


def test_judge_closes_overlong_thinking_and_asks_for_verdict() -> None:
    replies = {1: "Hmm, let me think about this for a very long time", 2: "no: not a program"}
    engine = ScriptedEngine(lambda p, n: replies[n])
    [d] = _judge(engine, think_tokens=16, answer_tokens=8)
    assert d.is_contest is False
    second_prompt, params = engine.calls[1]
    assert second_prompt.endswith("a very long time\n</think>\n\n") and params.max_tokens == 8


def test_judge_retries_garbage_with_new_seed() -> None:
    replies = {1: "</think>perhaps", 2: "</think>yes: has samples"}
    engine = ScriptedEngine(lambda p, n: replies[n])
    [d] = _judge(engine, attempts=3)
    assert d.is_contest is True
    assert [c[1].seed for c in engine.calls] == [0, 1]


def test_judge_undecided_after_attempts_never_guesses() -> None:
    engine = ScriptedEngine(lambda p, n: "</think>it depends")
    [d] = _judge(engine, attempts=3)
    assert d.is_contest is None and d.score is None
    assert "undecided" in d.rationale and "it depends" in d.rationale
    assert len(engine.calls) == 3


def test_judge_records_rejected_request() -> None:
    engine = ScriptedEngine(lambda p, n: "!prompt too long")
    [d] = _judge(engine)
    assert d.is_contest is None and "prompt too long" in d.rationale


def test_judge_many_concurrently_in_order() -> None:
    def script(prompt: str, n: int) -> str:
        return "</think>yes: contest" if "Input" in prompt else "</think>no: not contest"

    engine = ScriptedEngine(script, delay=0.01)
    texts = [CONTEST, NOT_CONTEST[0]] * 10 + ["   "]
    decisions = _judge(engine, texts=texts, concurrency=4)
    assert [d.is_contest for d in decisions] == [True, False] * 10 + [None]
    assert engine.max_in_flight == 4
