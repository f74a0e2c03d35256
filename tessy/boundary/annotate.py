"""Style-span annotation by prompting a strong model: it lists the style phrases of a window verbatim."""

import asyncio
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tessy.boundary.windows import Span, Window

if TYPE_CHECKING:
    from tessy.engines import Engine, Sampling

ANNOTATOR_VERSION = "style-judge-v1"  # stored value kept: renaming it would not change an annotation

_TEMPLATE = """Below is a passage taken from a model's step-by-step reasoning.
List every phrase in it that only steers the flow or tone of the text and carries none of its content:
- hesitation and attitude markers, such as "well", "okay", "so", "let's see", "I think";
- transitions, such as "to begin with", "in this case", "for example", "but if".
Never list anything that states reasoning, code, numbers, formulas or facts about the problem.
Copy each phrase exactly as it is written, character for character, in the order the phrases appear.
Reply with a JSON array of strings and nothing else. Reply [] if there is no such phrase.

Passage:
<<<
{text}
>>>"""

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


class AnnotationError(ValueError):
    """An annotator answer that cannot be turned into spans; `reason` is the drop counter's key."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass
class Annotation:
    windows: list[Window]  # annotated windows, in input order
    dropped: Counter[str] = field(default_factory=Counter)  # reason -> windows dropped


def annotation_prompt(text: str) -> str:
    """The user message asking the annotator for the style phrases of one window."""
    return _TEMPLATE.format(text=text)


def parse_phrases(answer: str) -> list[str]:
    """The annotator's JSON array of phrases. A markdown code fence around it is tolerated, nothing else."""
    body = answer.strip()
    if fenced := _FENCE.match(body):
        body = fenced.group(1)
    try:
        phrases = json.loads(body)
    except json.JSONDecodeError as e:
        raise AnnotationError("invalid_json", str(e)) from e
    if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
        raise AnnotationError("not_string_array", body[:200])
    return phrases


def locate(text: str, phrases: Sequence[str]) -> list[Span]:
    """Char spans of `phrases` found in order in `text`, each search starting after the previous match."""
    spans: list[Span] = []
    cursor = 0
    for phrase in phrases:
        if not phrase.strip():
            raise AnnotationError("empty_phrase", repr(phrase))
        at = text.find(phrase, cursor)
        if at < 0:
            reason = "out_of_order" if phrase in text else "span_not_found"
            raise AnnotationError(reason, repr(phrase))
        cursor = at + len(phrase)
        spans.append((at, cursor))
    return spans


async def annotate_llm(
    engine: "Engine",
    windows: Sequence[Window],
    *,
    params: "Sampling",
    render: Callable[[str], str],
    extract: Callable[[str], str] = str.strip,
    concurrency: int = 16,
) -> Annotation:
    """Annotate windows with an annotator model. `render` wraps the user message in the annotator's
    chat format; `extract` takes the final answer out of its reply. A window whose answer does not
    parse, or names a phrase that is not in the window (in order), is dropped and counted by reason,
    never guessed."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be positive, got {concurrency}")
    gate = asyncio.Semaphore(concurrency)
    dropped: Counter[str] = Counter()

    async def one(window: Window) -> Window | None:
        async with gate:
            try:
                completion = await engine.complete(render(annotation_prompt(window.text)), params)
            except Exception as e:  # counted by type; one failing request must not sink the batch
                dropped[f"engine_error:{type(e).__name__}"] += 1
                return None
        try:
            return window.with_spans(locate(window.text, parse_phrases(extract(completion.text))))
        except AnnotationError as e:
            dropped[e.reason] += 1
            return None

    results = await asyncio.gather(*(one(w) for w in windows))
    return Annotation([w for w in results if w is not None], dropped)
