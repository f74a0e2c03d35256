"""LLM judge for contest questions, through any Engine.

The judge thinks first, in its own family's format (Qwen3 `<think>`, GPT-OSS analysis channel with
reasoning high), and its verdict is read after the end of thinking (for GPT-OSS: the final channel).
Thinking is the point of using a reasoning model as judge. If the thinking runs past its budget, we
close it in the family's format and ask for the verdict alone. An answer that does not parse is
retried with a new seed; after `attempts` tries the question is recorded as undecided, never guessed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from tessy.engines.base import Engine, RequestRejected, Sampling
from tessy.filtering.heuristic import Decision
from tessy.filtering.prompt import JUDGE_VERSION, judge_prompt
from tessy.templates import Family

PARSER_VERSION = "parse-v1"
_MAX_REASON = 200

_SPECIAL = re.compile(r"<\|[^|>]*\|>")
# "yes: ...", "**No** - ...", "Answer: yes, because ...", "Verdict: NO."
_VERDICT = re.compile(
    r"^\W*(?:(?:final\s+)?(?:answer|verdict)\s*[:\-]\s*)?\W*(yes|no)\b\W*(.*)$", re.IGNORECASE
)


@dataclass(frozen=True)
class Verdict:
    is_contest: bool
    reason: str


def parse_verdict(answer: str) -> Verdict | None:
    """Read yes/no plus a one-line reason from the judge's answer; None when absent or contradictory."""
    lines = [ln.strip() for ln in _SPECIAL.sub(" ", answer).replace("*", "").splitlines() if ln.strip()]
    verdicts = [
        (m.group(1).lower() == "yes", m.group(2).strip()) for ln in lines if (m := _VERDICT.match(ln))
    ]
    if not verdicts or len({v for v, _ in verdicts}) > 1:
        return None
    is_contest, reason = verdicts[0]
    reason = " ".join(reason.split())[:_MAX_REASON] or "(no reason given)"
    return Verdict(is_contest, reason)


@dataclass(frozen=True)
class JudgeConfig:
    attempts: int = 3
    concurrency: int = 64
    think_tokens: int = 1024  # thinking budget before we close it and ask for the verdict
    answer_tokens: int = 64
    sampling: Sampling = Sampling(seed=0)  # max_tokens is set per step from the budgets above


def judge_version(family: str, judge: str) -> str:
    """Everything that can change a decision: prompt, parser, the judge's chat format and model."""
    return f"{JUDGE_VERSION}/{PARSER_VERSION}/{family}/{judge}"


async def judge_one(
    engine: Engine, family: Family, question: str, config: JudgeConfig = JudgeConfig()
) -> str:
    """One judge answer (the text after the thinking) to one question; may be unparseable."""
    prompt = judge_prompt(question)
    completion = await engine.complete(
        family.thinking_prompt(prompt), replace(config.sampling, max_tokens=config.think_tokens)
    )
    thinking, answer = family.split_thinking(completion.text)
    if answer is None or (completion.finish_reason == "length" and not answer.strip()):
        completion = await engine.complete(
            family.answer_prompt(prompt, thinking), replace(config.sampling, max_tokens=config.answer_tokens)
        )
        answer = completion.text
    return answer


async def _decide(
    engine: Engine, family: Family, question: str, config: JudgeConfig, version: str
) -> Decision:
    if not question.strip():
        return Decision(None, None, "undecided: empty question", "llm", version)
    answer = ""
    for attempt in range(config.attempts):
        seed = (config.sampling.seed or 0) + attempt
        attempt_config = replace(config, sampling=replace(config.sampling, seed=seed))
        try:
            answer = await judge_one(engine, family, question, attempt_config)
        except RequestRejected as e:
            return Decision(None, None, f"undecided: judge rejected the request: {e}", "llm", version)
        if (verdict := parse_verdict(answer)) is not None:
            return Decision(verdict.is_contest, float(verdict.is_contest), verdict.reason, "llm", version)
    snippet = " ".join(answer.split())[:120]
    return Decision(
        None,
        None,
        f"undecided: no yes/no after {config.attempts} attempts; last answer {snippet!r}",
        "llm",
        version,
    )


async def judge_questions(
    engine: Engine,
    family: Family,
    texts: Sequence[str],
    *,
    version: str,
    config: JudgeConfig = JudgeConfig(),
    on_decision: Callable[[int, Decision], None] | None = None,
) -> list[Decision]:
    """Judge many questions concurrently (at most `config.concurrency` in flight), in input order.
    `version` (`judge_version`) is stored with each decision, so a new judge means new labels."""
    gate = asyncio.Semaphore(config.concurrency)

    async def run(i: int, text: str) -> Decision:
        async with gate:
            decision = await _decide(engine, family, text, config, version)
        if on_decision is not None:
            on_decision(i, decision)
        return decision

    return list(await asyncio.gather(*(run(i, t) for i, t in enumerate(texts))))
