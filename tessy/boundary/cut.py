"""Where a span ends, given the predicted class of the token after each new token (docs/architecture.md,
"the synthesis state machine")."""

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tessy.boundary.labels import CAPABILITY, STYLE

ROLES = ("teacher", "student")

Range = tuple[int, int]
_FENCE = re.compile(r"^[ \t]*```", re.M)  # a code fence opens or closes at a line's start


@dataclass(frozen=True)
class Cut:
    keep: int  # chars of the new text to keep (a token end; extending to a word end is the caller's job)
    switch: bool  # whether the other role writes next


def switch_class(role: str) -> int:
    """The class that ends `role`'s span: style for the teacher, capability for the student."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    return STYLE if role == "teacher" else CAPABILITY


def find_cut(
    role: str,
    next_classes: Sequence[int],
    token_ends: Sequence[int],
    n_chars: int,
    no_cut: Sequence[Range] = (),
) -> Cut:
    """The teacher keeps through its first new token predicted to be followed by style, the student
    through its first new token predicted to be followed by capability; that token is always kept, so
    a cut keeps at least one token. With no such token everything is kept and the role stays. No cut
    falls strictly inside a range of `no_cut` ([start, end) char ranges of the new text)."""
    other = switch_class(role)
    for cls, end in zip(next_classes, token_ends, strict=True):
        if cls == other and is_cut_point(end, no_cut):
            return Cut(end, True)
    return Cut(n_chars, False)


def is_cut_point(offset: int, no_cut: Sequence[Range]) -> bool:
    """Whether a span may end at `offset`: not strictly inside a range of `no_cut` (a range's start
    and end are cut points)."""
    return not any(start < offset < end for start, end in no_cut)


def code_blocks(text: str, start: int = 0) -> tuple[Range, ...]:
    """The fenced code blocks of `text[start:]`, as [start, end) ranges relative to `start`, from
    each opening fence to the end of its closing fence. A block still open runs one char past the end
    of the text: the text's end is then no cut point either, or a stream checked mid-program would hand
    the other model half of it. Fences before `start` count, so a block opened earlier is seen."""
    fences = [m.start() for m in _FENCE.finditer(text)]
    blocks = []
    for i in range(0, len(fences), 2):
        end = text.find("```", fences[i + 1]) + 3 if i + 1 < len(fences) else len(text) + 1
        if end > start:
            blocks.append((max(fences[i], start) - start, end - start))
    return tuple(blocks)
