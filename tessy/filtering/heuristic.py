"""Contest-question heuristic: scores the signs of a programming-contest statement (input/output
sections, bounded constraints, sample I/O, print/output phrasing) without any model."""

from __future__ import annotations

import re
from dataclasses import dataclass

HEURISTIC_VERSION = "contest-heuristic-v1"
THRESHOLD = 0.5


@dataclass(frozen=True)
class Decision:
    """One filter's verdict on one question; is_contest None means the filter could not decide."""

    is_contest: bool | None
    score: float | None
    rationale: str
    filter: str
    filter_version: str


@dataclass(frozen=True)
class _Sign:
    name: str
    weight: float
    pattern: re.Pattern[str]


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE | re.MULTILINE)


_LE = r"(?:<=|≤|\\le(?:q)?\b|\\leqslant\b|&le;)"
_SIGNS = (
    _Sign(
        "input section",
        0.25,
        _rx(r"^\W*(?:input(?:\s+(?:format|specification|data))?|входные данные)\W*$|-{3,}\s*input\s*-{3,}"),
    ),
    _Sign(
        "output section",
        0.25,
        _rx(
            r"^\W*(?:output(?:\s+(?:format|specification|data))?|выходные данные)\W*$|-{3,}\s*output\s*-{3,}"
        ),
    ),
    _Sign(
        "input description",
        0.15,
        _rx(
            r"\b(?:the (?:first|next|second|only|each) line(?:s)? (?:of (?:the )?input )?contains?"
            r"|(?:standard|the) input|stdin|input consists of|each test case|the first line of each test)"
        ),
    ),
    _Sign(
        "print/output phrasing",
        0.15,
        _rx(
            r"\b(?:print|output|stdout|standard output)\b[^.\n]{0,80}"
            r"\b(?:integer|number|string|line|answer|yes|no)"
        ),
    ),
    _Sign(
        "bounded constraint",
        0.2,
        _rx(rf"\d[\d^{{}}.,·*x×]*\s*{_LE}\s*[\w_{{}}\\|()\[\], ]{{1,20}}\s*{_LE}\s*\d"),
    ),
    _Sign("constraints section", 0.1, _rx(r"^\W*(?:constraints|limits|ограничения)\W*$")),
    _Sign(
        "sample I/O",
        0.2,
        _rx(
            r"^\W*(?:sample|example)s?(?:\s+(?:input|output|test|case))?\s*\d*\W*$|-{3,}\s*examples?\s*-{3,}"
        ),
    ),
    _Sign("time/memory limit", 0.1, _rx(r"\b(?:time|memory) limit\b|\b\d+\s*(?:seconds?|megabytes|mb)\b")),
    _Sign(
        "function signature", 0.1, _rx(r"\b(?:def|class|int|void|public)\s+\w+\s*\(|```(?:python|cpp|java)")
    ),
)


def heuristic_decision(text: str, threshold: float = THRESHOLD) -> Decision:
    """Score in [0, 1] = the clipped sum of the weights of the signs found; contest if >= threshold."""
    if not text or not text.strip():
        return Decision(None, None, "empty question", "heuristic", HEURISTIC_VERSION)
    found = [s for s in _SIGNS if s.pattern.search(text)]
    score = round(min(1.0, sum(s.weight for s in found)), 3)
    is_contest = score >= threshold
    names = ", ".join(s.name for s in found) or "no contest signs"
    verdict = "contest" if is_contest else "not contest"
    return Decision(is_contest, score, f"{verdict} ({score:.2f}): {names}", "heuristic", HEURISTIC_VERSION)
