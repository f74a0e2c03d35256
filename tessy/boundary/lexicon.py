"""Style-span annotation from fixed phrase and regex lists: free, deterministic, and exact where the
styles are known (the microworld); a general list serves as a fallback elsewhere."""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from tessy.boundary.windows import Span, Window
from tessy.microworld.styles import CLOSERS, FILLERS, OPENERS, Style


@dataclass(frozen=True)
class Lexicon:
    phrases: tuple[str, ...] = ()  # literal phrases, matched as whole words
    patterns: tuple[str, ...] = ()  # regular expressions, matched as written
    ignore_case: bool = False

    def __post_init__(self) -> None:
        # Accept lists from configs; store tuples so the lexicon stays hashable.
        object.__setattr__(self, "phrases", tuple(self.phrases))
        object.__setattr__(self, "patterns", tuple(self.patterns))
        if not self.phrases and not self.patterns:
            raise ValueError("a lexicon needs at least one phrase or pattern")

    @cached_property
    def regex(self) -> re.Pattern[str]:
        # Longest phrase first, so "But wait," wins over "But" at the same position.
        literal = [rf"(?<!\w){re.escape(p)}(?!\w)" for p in sorted(set(self.phrases), key=len, reverse=True)]
        return re.compile("|".join([*literal, *self.patterns]), re.IGNORECASE if self.ignore_case else 0)

    def spans(self, text: str) -> list[Span]:
        """Matches in order; phrases separated only by whitespace form one span ("Hmm. Let me think.")."""
        spans: list[Span] = []
        for m in self.regex.finditer(text):
            if m.end() == m.start():
                continue
            if spans and not text[spans[-1][1] : m.start()].strip():
                spans[-1] = (spans[-1][0], m.end())
            else:
                spans.append(m.span())
        return spans

    def annotate(self, windows: Iterable[Window]) -> list[Window]:
        return [w.with_spans(self.spans(w.text)) for w in windows]


# The short heads of each microworld style, which also catch variants a trained model may write...
STUDENT_PHRASES = ("Okay, let's see.", "Hmm, wait,", "So", "Let me think.", "Alright,", "But wait,")
TEACHER_PHRASES = ("We need to", "Approach:", "Edge cases:", "Complexity:", "Implementation:")


def _microworld(style: Style, heads: tuple[str, ...]) -> Lexicon:
    """...plus the generator's own openers, fillers and closers; the longest match wins."""
    phrases = [p for step in OPENERS[style].values() for p in step] + CLOSERS[style]
    return Lexicon(phrases=(*heads, *phrases, *(FILLERS if style == "student" else ())))


MICROWORLD = {
    "student": _microworld("student", STUDENT_PHRASES),
    "teacher": _microworld("teacher", TEACHER_PHRASES),
}

GENERAL = Lexicon(
    phrases=(
        "okay",
        "well",
        "so",
        "hmm",
        "wait",
        "alright",
        "let's see",
        "let me think",
        "let me check",
        "I think",
        "to begin with",
        "first of all",
        "in this case",
        "for example",
        "but if",
        "but wait",
        "on the other hand",
        "in other words",
        "that said",
        "anyway",
        "actually",
        "now",
    ),
    ignore_case=True,
)
