"""Token labels from char spans. Class ids: style = 1, capability = 0. The predictors are trained on
*shifted* labels: the output at position j is the class of token j + 1 (causal base, so position j
cannot see token j + 1 and must predict whether the text is about to change hands)."""

from collections.abc import Sequence

from tessy.boundary.windows import Span

CAPABILITY, STYLE = 0, 1
IGNORE = -100  # torch's cross-entropy ignore index
ID2LABEL = {CAPABILITY: "capability", STYLE: "style"}
LABEL2ID = {v: k for k, v in ID2LABEL.items()}


def token_labels(text: str, offsets: Sequence[tuple[int, int]], spans: Sequence[Span]) -> list[int]:
    """Class of each token: style when its non-whitespace chars overlap a style span. A token of
    whitespace only is style only when it lies inside a span, so the gap after a span is capability."""
    inside = bytearray(len(text))
    for a, b in spans:
        inside[a:b] = b"\x01" * (b - a)
    labels = []
    for a, b in offsets:
        piece = text[a:b]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece) - len(piece.rstrip())
        if lead + trail < b - a:
            a, b = a + lead, b - trail
        labels.append(STYLE if any(inside[a:b]) else CAPABILITY)
    return labels


def shift(labels: Sequence[int]) -> list[int]:
    """Position j gets the label of token j + 1; the last position has no target."""
    return [*labels[1:], IGNORE] if labels else []
