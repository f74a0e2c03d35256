"""Where a span ends, given the predicted class of the token after each new token (docs/architecture.md,
"the synthesis state machine")."""

from collections.abc import Sequence
from dataclasses import dataclass

from tessy.boundary.labels import CAPABILITY, STYLE

ROLES = ("teacher", "student")


@dataclass(frozen=True)
class Cut:
    keep: int  # chars of the new text to keep (a token end; extending to a word end is the caller's job)
    switch: bool  # whether the other role writes next


def find_cut(role: str, next_classes: Sequence[int], token_ends: Sequence[int], n_chars: int) -> Cut:
    """The teacher keeps through its first new token predicted to be followed by style, the student
    through its first new token predicted to be followed by capability; that token is always kept, so
    a cut keeps at least one token. With no such token everything is kept and the role stays."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    other = STYLE if role == "teacher" else CAPABILITY
    for cls, end in zip(next_classes, token_ends, strict=True):
        if cls == other:
            return Cut(end, True)
    return Cut(n_chars, False)
