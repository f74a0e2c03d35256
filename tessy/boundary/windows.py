"""Word windows cut from thinking texts: the units the boundary predictors are trained and scored on."""

import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tessy.hashing import sha256_text

Span = tuple[int, int]

_WORD = re.compile(r"\S+")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Window:
    """A slice of one response. `spans` are style spans as [start, end) char offsets into `text`
    (sorted, non-overlapping); None means not annotated yet."""

    text: str
    source: str = ""  # content hash of the response the window was cut from
    start: int = 0  # char offset of the window in that response
    spans: tuple[Span, ...] | None = None

    def __post_init__(self) -> None:
        if self.spans is None:
            return
        object.__setattr__(self, "spans", tuple((int(a), int(b)) for a, b in self.spans))
        end = 0
        for a, b in self.spans:
            if not (end <= a < b <= len(self.text)):
                raise ValueError(
                    f"style spans must be sorted, non-empty, non-overlapping and inside the text "
                    f"(length {len(self.text)}); got {self.spans}"
                )
            end = b

    @property
    def key(self) -> str:
        """Content id: windows that differ only in whitespace are the same window."""
        return sha256_text(_SPACE.sub(" ", self.text).strip())

    def with_spans(self, spans: Iterable[Span]) -> "Window":
        return Window(self.text, self.source, self.start, tuple(spans))


def cut_windows(
    text: str,
    *,
    words: int = 60,
    per_response: int = 100,
    seed: int = 0,
    spans: Sequence[Span] | None = None,
) -> list[Window]:
    """Up to `per_response` windows of `words` consecutive words at distinct random offsets.

    The offsets depend only on (seed, text), not on the order responses are processed in. A text
    shorter than `words` words gives one window with all of it. Given `spans` (style spans of the
    whole text, e.g. a generator's ground truth), each window carries the part that falls inside it.
    """
    if words < 1 or per_response < 1:
        raise ValueError(f"words and per_response must be positive, got {words} and {per_response}")
    bounds = [m.span() for m in _WORD.finditer(text)]
    if not bounds:
        return []
    source = sha256_text(text)
    n_starts = max(1, len(bounds) - words + 1)
    rng = random.Random(f"{seed}:{source}")
    starts = sorted(rng.sample(range(n_starts), min(per_response, n_starts)))
    out = []
    for i in starts:
        a, b = bounds[i][0], bounds[min(i + words, len(bounds)) - 1][1]
        window = Window(text[a:b], source, a)
        if spans is not None:
            window = window.with_spans(_clip(spans, a, b))
        out.append(window)
    return out


def _clip(spans: Sequence[Span], a: int, b: int) -> list[Span]:
    return [(max(s, a) - a, min(e, b) - a) for s, e in spans if s < b and e > a]


def _boundaries(window: Window) -> dict[str, list[int]]:
    """Char offsets inside `window` where a style span starts or ends (not at the window's edges)."""
    spans = window.spans or ()
    return {
        "start": [a for a, _ in spans if 0 < a],
        "end": [b for _, b in spans if b < len(window.text)],
    }


def splice(own: Window, other: Window, rng: random.Random) -> Window | None:
    """`own` up to a style span's start (or end), then `other` from a span's start (or end) on, with
    both parts' labels: text one model began and the other went on with, handed over where TESSY
    hands over, at a span boundary. None when the two share no kind of boundary."""
    if own.spans is None or other.spans is None:
        raise ValueError("splice needs annotated windows")
    mine, theirs = _boundaries(own), _boundaries(other)
    kinds = [k for k in ("start", "end") if mine[k] and theirs[k]]
    if not kinds:
        return None
    kind = rng.choice(kinds)
    x, y = rng.choice(mine[kind]), rng.choice(theirs[kind])
    text = own.text[:x] + other.text[y:]
    spans = [(a, min(b, x)) for a, b in own.spans if a < x]
    spans += [(a - y + x, b - y + x) for a, b in other.spans if a >= y]
    return Window(text, sha256_text(text), 0, tuple(spans))


def mixed_windows(own: Sequence[Window], other: Sequence[Window], n: int, seed: int) -> list[Window]:
    """Up to `n` distinct spliced windows, each of a random `own` window and a random `other` one."""
    if not own or not other:
        return []
    rng = random.Random(f"mixed/{seed}")
    out = [splice(rng.choice(own), rng.choice(other), rng) for _ in range(n)]
    return dedup(w for w in out if w is not None)


def dedup(windows: Iterable[Window]) -> list[Window]:
    """First occurrence of each window content, in order."""
    seen: set[str] = set()
    out = []
    for w in windows:
        if w.key not in seen:
            seen.add(w.key)
            out.append(w)
    return out


def save_windows(path: Path, windows: Iterable[Window]) -> None:
    """JSONL, one window per line; written to a temporary file and renamed so readers never see half."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for w in windows:
            row = {"text": w.text, "source": w.source, "start": w.start, "spans": w.spans}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def load_windows(path: Path) -> list[Window]:
    out = []
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                row = json.loads(line)
                spans = row.get("spans")
                out.append(Window(row["text"], row.get("source", ""), row.get("start", 0), spans))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{n}: not a window record: {e}") from e
    return out
