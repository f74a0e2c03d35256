"""The two reasoning styles: span openers per plan step, and marker lexicons for style purity.

Student (Qwen3-like) openers are chatty and hesitant; teacher (GPT-OSS-like) openers are terse
headers. Markers are the short phrases that identify a style; capability text never contains any.
"""

from __future__ import annotations

import re
from typing import Literal

Style = Literal["student", "teacher"]
STYLES: tuple[Style, ...] = ("student", "teacher")

# "draft" is the code written out inside the thinking, as reasoning models do before answering.
STEPS = ("goal", "method", "key", "sample", "edge", "complexity", "implementation", "draft")

OPENERS: dict[Style, dict[str, list[str]]] = {
    "student": {
        "goal": [
            "Okay, let's see. The problem wants me to",
            "Okay, let's see. I need to",
            "Okay, let's see. The task is to",
            "Okay, let's see. Here I have to",
        ],
        "method": [
            "Hmm, how should I do that? Let me think. I can",
            "Let me think. The simplest way is to",
            "Hmm. I guess I can",
            "Alright, the plan is to",
            "So the idea is to",
        ],
        "key": ["So", "Hmm, so", "Right, so", "So basically,"],
        "sample": [
            "Let me check the example.",
            "Let me verify with the sample.",
            "Wait, let me check the sample.",
        ],
        "edge": ["But wait,", "Hmm, wait,", "Oh, and", "But wait, what about edge cases? Well,"],
        "complexity": ["Alright, that's", "So it runs in", "Alright, this should be"],
        "implementation": ["So in code, I'll", "Okay, so the code will", "Alright, I'll"],
        "draft": ["Let me write it out.", "Okay, let me draft the code.", "So the code looks like this:"],
    },
    "teacher": {
        "goal": ["We need to"],
        "method": ["Approach:", "Plan:"],
        "key": ["Key:", "Key point:"],
        "sample": ["Check:", "Sample check:"],
        "edge": ["Edge cases:"],
        "complexity": ["Complexity:"],
        "implementation": ["Implementation:"],
        "draft": ["Draft:", "Code sketch:"],
    },
}

# Pure style sentences: the student's hesitations between steps, both styles' closing lines.
FILLERS = ["Hmm.", "Okay.", "Let me make sure.", "Yeah.", "Hmm, right."]
CLOSERS: dict[Style, list[str]] = {
    "student": [
        "I think that's it.",
        "That should work.",
        "Yeah, that should be correct.",
        "Okay, I think that's all.",
    ],
    "teacher": ["Now produce the final answer.", "Now write the code."],
}

MARKERS: dict[Style, tuple[str, ...]] = {
    "student": (
        "Okay", "Hmm", "wait", "Wait", "Let me", "Alright", "So", "Right, so", "Yeah", "I think",
        "I guess", "Oh, and", "Well,", "That should work", "I'll", "let's see",
    ),
    "teacher": (
        "We need to", "Approach:", "Plan:", "Key:", "Key point:", "Check:", "Sample check:", "Edge cases:",
        "Complexity:", "Implementation:", "Draft:", "Code sketch:", "Now produce", "Now write",
    ),
}  # fmt: skip

_PATTERNS = {
    style: re.compile("|".join(rf"(?<![A-Za-z]){re.escape(m)}(?![A-Za-z])" for m in markers))
    for style, markers in MARKERS.items()
}


def markers_in(text: str, style: Style) -> list[str]:
    """The markers of `style` found in `text`, in order."""
    return _PATTERNS[style].findall(text)


def other_style(style: Style) -> Style:
    return "teacher" if style == "student" else "student"


def is_pure(thinking: str, style: Style) -> bool:
    """True when the thinking uses at least one marker of its own style and none of the other's."""
    return bool(markers_in(thinking, style)) and not markers_in(thinking, other_style(style))
