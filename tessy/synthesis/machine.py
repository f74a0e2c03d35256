"""The per-sample TESSY state machine (docs/architecture.md, "the synthesis state machine") and the
paper's baselines through the same code.

A shared `thinking` text grows; each model continues it from its own prompt. Under TESSY the student
opens, each span ends where the author's boundary predictor first sees the other kind of text (never
within the span's first `min_span_tokens` words, except before a program the student opens, nor
inside a code block), and the roles swap. The teacher ends the thinking: a student's end-of-thinking
marker hands over to it instead (unless `student_ends_thinking`). After the thinking the answer
writer (the student, for TESSY) writes the whole answer in one call. Every output is rendered in the
student's format.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import islice
from typing import Any, Literal, Protocol

from tessy.boundary.cut import Cut, Range, code_blocks, is_cut_point
from tessy.config import SynthesisConfig, declared_default
from tessy.engines.base import Completion, Engine, RequestRejected, Sampling
from tessy.hashing import sha256_text
from tessy.synthesis.records import Author, AuthorCost, Span, Trace
from tessy.templates import Family


class Boundary(Protocol):
    """A role's boundary predictor, as synthesis sees it (batched across samples behind the call)."""

    async def cut(
        self, key: str, context: str, new_text: str, role: Author, no_cut: tuple[Range, ...] = ()
    ) -> Cut: ...

    def release(self, key: str) -> None: ...


@dataclass
class Writer:
    """One model taking part: how to call it, its format, its tokenizer, its predictor."""

    name: Author
    engine: Engine
    family: Family
    count_tokens: Callable[[str], int]
    boundary: Boundary | None = None
    k: int = 20  # fixed-k mode: tokens per request
    model: str = ""
    predictor_id: str = ""


@dataclass(frozen=True)
class Method:
    name: str
    thinker: Literal["tessy", "student", "teacher"]
    answerer: Author


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("tessy", "tessy", "student"),
        Method("teacher-only", "teacher", "teacher"),
        Method("student-only", "student", "student"),
        Method("teacher-think", "teacher", "student"),
        Method("teacher-answer", "student", "teacher"),
    )
}


@dataclass(frozen=True)
class Settings:
    """How samples are made: each setting, its meaning and default are SynthesisConfig's (loop
    detection has no config setting)."""

    mode: Literal["stream", "fixed-k"] = declared_default(SynthesisConfig, "mode")
    span_cap: int = declared_default(SynthesisConfig, "span_cap")
    check_every: int = declared_default(SynthesisConfig, "check_every")
    max_thinking_tokens: int = declared_default(SynthesisConfig, "max_thinking_tokens")
    max_answer_tokens: int = declared_default(SynthesisConfig, "max_answer_tokens")
    word_boundary: Literal["extend", "drop"] = declared_default(SynthesisConfig, "word_boundary")
    min_span_tokens: int = declared_default(SynthesisConfig, "min_span_tokens")
    cut_in_code: bool = declared_default(SynthesisConfig, "cut_in_code")
    student_ends_thinking: bool = declared_default(SynthesisConfig, "student_ends_thinking")
    loop_ngram: tuple[int, int] = (3, 50)  # words
    loop_repeats: int = 8
    max_attempts: int = declared_default(SynthesisConfig, "max_attempts")
    sampling: Sampling = field(default_factory=Sampling)

    @classmethod
    def from_config(cls, s: SynthesisConfig) -> Settings:
        return cls(
            mode=s.mode,
            span_cap=s.span_cap,
            check_every=s.check_every,
            max_thinking_tokens=s.max_thinking_tokens,
            max_answer_tokens=s.max_answer_tokens,
            word_boundary=s.word_boundary,
            min_span_tokens=s.min_span_tokens,
            cut_in_code=s.cut_in_code,
            student_ends_thinking=s.student_ends_thinking,
            max_attempts=s.max_attempts,
            sampling=Sampling(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k, min_p=s.min_p),
        )


class SampleError(Exception):
    """This attempt at a sample failed in a way a new seed may fix."""


_SPACE = re.compile(r"\s")
_WORD = re.compile(r"\S+")


def word_cut(text: str, keep: int, how: str, *, least: int = 1, closed: bool = False) -> int:
    """Move a cut so no word is split between two tokenizers: forward to the end of its word
    (`extend`, the reference code) or back to the word's start (`drop`, the paper). The text keeps at
    least its first `least` words. A cut at the end of the text may fall inside a word still being
    written, so there `extend` drops too, unless the text is `closed`: the model ended its thinking
    there, so its last word is whole."""
    words = list(islice(_WORD.finditer(text), least))
    if not words:
        return keep
    if keep <= words[-1].end():
        return words[-1].end()
    if (
        text[keep - 1].isspace()
        or (keep < len(text) and text[keep].isspace())
        or (closed and keep == len(text))
    ):
        return keep
    if how == "extend":
        if match := _SPACE.search(text, keep):
            return match.start()
        if closed:
            return len(text)
    return next(i for i in range(keep - 1, 0, -1) if text[i].isspace())


def _word_start(text: str, n: int) -> int | None:
    """Char offset where word `n` of `text` starts (counting from 0); None when it has no such word."""
    match = next(islice(_WORD.finditer(text), n, None), None)
    return match.start() if match else None


def words_before_program(thinking: str, new: str) -> int | None:
    """Words of `new` before the first code block it opens (`code_blocks`' fences), or None when it
    opens none; a block opened in `thinking` does not count."""
    starts = [start for start, _ in code_blocks(thinking + new) if start >= len(thinking)]
    return len(new[: starts[0] - len(thinking)].split()) if starts else None


def _opens_program(thinking: str, new: str) -> bool:
    return words_before_program(thinking, new) == 0


def skipped_words(role: Author, thinking: str, skip: int, new: str) -> int:
    """Words of `new` that its writer's predictor reads as context before the first cut point: the
    span's first `skip` (min_span_tokens - 1 less the words it already has). A student's span may
    also end after the last word before a code block it opens: the program is capability text, and
    a span handed over mid-sentence (" like this:") would otherwise write all of it before its first
    cut point. A teacher's span never ends there: it keeps its program."""
    if role != "student":
        return skip
    before = words_before_program(thinking, new)
    return min(skip, before - 1) if before else skip


def _kept(family: Family, completion: Completion, keep: int) -> tuple[str, bool]:
    """What a reply cut at `keep` adds to the thinking, and whether the thinking ends with it. The cut
    comes first: a marker or an end of sequence counts only when the cut kept it. A reply that ran
    into its token cap keeps back the first chars of a marker it ends in: the next request writes
    the marker whole, where split across two requests no check would see it."""
    kept = completion.text[:keep]
    if (end := family.find_end(kept)) is not None:
        return kept[: end[0]], True
    if keep == len(completion.text) and completion.finish_reason == "length":
        return kept[: len(kept) - family.partial_end(kept)], False
    eos = keep == len(completion.text) and completion.finish_reason == "stop"
    return kept, eos and family.eos_ends_thinking


def find_loop(words: list[str], sizes: tuple[int, int], repeats: int) -> int | None:
    """The n-gram size that the text ends by repeating `repeats` times in a row, if any."""
    for n in range(sizes[0], sizes[1] + 1):
        if len(words) < n * repeats:
            break
        tail = words[-n:]
        if all(words[-n * (i + 1) : len(words) - n * i] == tail for i in range(1, repeats)):
            return n
    return None


def _tail_words(text: str, s: Settings) -> list[str]:
    """Enough trailing words for loop detection, without splitting the whole text every step."""
    n = s.loop_ngram[1] * s.loop_repeats
    return text[-n * 20 :].split()[-n:]


class Synthesizer:
    def __init__(
        self, student: Writer, teacher: Writer, settings: Settings, count_student_tokens: Callable[[str], int]
    ):
        self.writers = {"student": student, "teacher": teacher}
        self.settings = settings
        self.count = count_student_tokens

    async def run(self, trace_id: str, question_id: str, question: str, method: str) -> Trace:
        """Synthesize one sample, retrying a failed attempt with a new seed."""
        m = METHODS[method]
        base_seed = int(sha256_text(f"{question_id}|{method}")[:8], 16)
        errors = []
        failed = dict.fromkeys(self.writers, 0)  # tokens generated by the attempts that failed
        for attempt in range(1, self.settings.max_attempts + 1):
            cost = {name: AuthorCost(failed=n) for name, n in failed.items()}
            try:
                return await self._attempt(
                    trace_id, question_id, question, m, base_seed + 7919 * attempt, attempt, cost
                )
            except (SampleError, RequestRejected) as exc:
                errors.append(f"attempt {attempt}: {exc}")
                failed = {name: c.failed + c.generated for name, c in cost.items()}
            finally:
                for writer in self.writers.values():
                    if writer.boundary:
                        writer.boundary.release(trace_id)
        cost = {name: AuthorCost(failed=n) for name, n in failed.items()}
        return self._failed(trace_id, question_id, m, error="; ".join(errors), attempts=attempt, cost=cost)

    async def _attempt(
        self,
        trace_id: str,
        question_id: str,
        question: str,
        m: Method,
        seed: int,
        attempt: int,
        cost: dict[str, AuthorCost],
    ) -> Trace:
        """One attempt at the sample; `cost` is filled in as it goes, so a failed attempt's is known."""
        s = self.settings
        spans: list[Span] = []
        thinking = ""
        role: Author = "student" if m.thinker == "tessy" else m.thinker
        step = 0
        while True:
            writer = self.writers[role]
            # Words the writer has in the span it is writing: they count towards min_span_tokens.
            written = len(spans[-1].text.split()) if spans and spans[-1].author == role else 0
            # A program is capability text: a student's span never opens with one (it would write its
            # own, weaker program, with no cut point before the closing fence). The teacher writes it.
            may_yield = m.thinker == "tessy" and role == "student" and not written
            completion, keep, switch = await self._span(
                writer, question, thinking, m, seed + step, trace_id, written, may_yield
            )
            step += 1
            kept, ended = _kept(writer.family, completion, keep)
            # Under TESSY (unless `student_ends_thinking`) a student's end of thinking hands over instead.
            handed = ended and role == "student" and m.thinker == "tessy" and not s.student_ends_thinking
            ended = ended and not handed
            switch = (switch or handed) and not ended
            yielded = may_yield and _opens_program(thinking, kept)
            if yielded:
                kept, ended, switch = "", False, True
            cost[role].generated += completion.n_tokens
            cost[role].requests += 1
            if len(kept) < len(completion.text) or completion.finish_reason == "cut":
                cost[role].wasted += max(0, completion.n_tokens - writer.count_tokens(kept))
            if not kept.strip() and not ended and not handed and not yielded:
                raise SampleError(f"{role} wrote nothing (finish {completion.finish_reason})")
            if kept:
                if spans and spans[-1].author == role:
                    merged = spans[-1].text + kept
                    spans[-1] = Span(role, merged, self.count(merged))
                else:
                    spans.append(Span(role, kept, self.count(kept)))
                thinking += kept
            if sum(sp.n_tokens for sp in spans) > s.max_thinking_tokens:
                raise SampleError(f"thinking over {s.max_thinking_tokens} tokens")
            if (n := find_loop(_tail_words(thinking, s), s.loop_ngram, s.loop_repeats)) is not None:
                raise SampleError(f"repetition loop: a {n}-word n-gram repeated {s.loop_repeats} times")
            if ended:
                break
            if switch:
                role = "teacher" if role == "student" else "student"
        if not is_cut_point(len(thinking), self._no_cut("", thinking)):
            # The answer would go on from half a program (a hand-over can end a thinking there).
            raise SampleError("the thinking ended inside an open code block")
        answer = await self._answer(self.writers[m.answerer], question, thinking, seed + step, cost)
        spans.append(Span(m.answerer, answer, self.count(answer)))
        return self._finished(
            trace_id,
            question_id,
            m,
            spans=spans,
            thinking=thinking,
            answer=answer,
            switches=max(0, len(spans) - 2),  # author changes: a role that kept nothing adds no span
            cost=cost,
            attempts=attempt,
        )

    async def _span(
        self,
        writer: Writer,
        question: str,
        thinking: str,
        m: Method,
        seed: int,
        key: str,
        written: int,
        may_yield: bool,
    ) -> tuple[Completion, int, bool]:
        """One request by `writer`: its completion, how many chars of it to keep, and whether its
        predictor asks to switch roles there. `written`: words the writer already has in this span;
        `may_yield`: the span is given away if it opens with a program (`_attempt`)."""
        s = self.settings
        prompt = writer.family.thinking_prompt(question) + thinking
        if m.thinker != "tessy":  # one author writes the whole thinking
            budget = max(1, s.max_thinking_tokens - (self.count(thinking) if thinking else 0))
            params = replace(s.sampling, max_tokens=budget, seed=seed)
            until = _SingleAuthorCut(writer.family, s, thinking)
            completion = await writer.engine.complete(prompt, params, until=until)
            return completion, len(completion.text), False
        if writer.boundary is None:
            raise ValueError(f"TESSY needs a boundary predictor for the {writer.name}")
        # The span's first min_span_tokens - 1 words are no cut points: the predictor reads them as
        # context (words, not predictor tokens: the predictor reports only where it cuts).
        skipped = partial(skipped_words, writer.name, thinking, max(0, s.min_span_tokens - 1 - written))
        predict = partial(self._predict, writer, key, thinking, skipped)
        if s.mode == "fixed-k":
            completion = await writer.engine.complete(
                prompt, replace(s.sampling, max_tokens=writer.k, seed=seed)
            )
        else:
            # A span given away stops its stream at the fence, not after writing the program for nothing.
            yields = partial(_opens_program, thinking) if may_yield else None
            until = _StreamCut(predict, partial(self._no_cut, thinking), writer.family, s, skipped, yields)
            params = replace(s.sampling, max_tokens=s.span_cap, seed=seed)
            try:
                completion = await writer.engine.complete(prompt, params, until=until)
            finally:
                await until.settle()
            if until.switched:  # the cut is already at a word boundary
                return completion, len(completion.text), True
        keep, switch = await self._final_cut(writer.family, completion, predict, skipped)
        return completion, keep, switch

    async def _predict(
        self, writer: Writer, key: str, thinking: str, skipped: Callable[[str], int], new: str
    ) -> Cut:
        """The writer's predictor on `new`, its first `skipped(new)` words and the whitespace after them
        read as context, so the first cut point is inside the next word (a switch predicted on the
        whitespace would be stretched to that word's end, past a code fence opening it); no cut while
        `new` has no more words than that, nor inside a code block (unless `cut_in_code`)."""
        head = _word_start(new, skipped(new))
        if head is None:
            return Cut(len(new), False)
        context = thinking + new[:head]
        cut = await writer.boundary.cut(
            key, context, new[head:], writer.name, self._no_cut(context, new[head:])
        )
        return Cut(head + cut.keep, cut.switch)

    def _no_cut(self, thinking: str, new: str) -> tuple[Range, ...]:
        """Where in `new` no span may end: inside a code block (none with `cut_in_code`)."""
        return () if self.settings.cut_in_code else code_blocks(thinking + new, len(thinking))

    async def _final_cut(
        self,
        family: Family,
        completion: Completion,
        predict: Callable[[str], Awaitable[Cut]],
        skipped: Callable[[str], int],
    ) -> tuple[int, bool]:
        """Where a whole reply is cut (chars kept, switch). The predictor judges the text before any
        end-of-thinking marker; a cut with only whitespace between it and the marker (or an end of
        sequence that ends the thinking) keeps the reply whole: the thinking ends."""
        text = completion.text
        hit = family.find_end(text)
        visible = text if hit is None else text[: hit[0]]
        stop = completion.finish_reason == "stop"
        cut = await predict(visible)
        if not cut.switch:
            return len(text), False
        keep = word_cut(
            visible,
            cut.keep,
            self.settings.word_boundary,
            least=skipped(visible) + 1,
            closed=hit is not None or stop,
        )
        if (hit is not None or (stop and family.eos_ends_thinking)) and not visible[keep:].strip():
            return len(text), False
        return keep, True

    async def _answer(
        self, writer: Writer, question: str, thinking: str, seed: int, cost: dict[str, AuthorCost]
    ) -> str:
        s = self.settings
        prompt = writer.family.answer_prompt(question, thinking)

        def marker(text: str) -> int | None:
            hit = writer.family.find_end(text)
            return hit[1] if hit else None

        # An answer that closes a thinking again has lost its way, and often runs on to its cap (none
        # of bench/fidelity.py's 800 finished answers holds a marker): its stream stops there.
        completion = await writer.engine.complete(
            prompt, replace(s.sampling, max_tokens=s.max_answer_tokens, seed=seed), until=marker
        )
        cost[writer.name].generated += completion.n_tokens
        cost[writer.name].requests += 1
        if completion.finish_reason == "cut":
            raise SampleError(f"{writer.name}'s answer wrote an end-of-thinking marker")
        if completion.finish_reason == "length":
            raise SampleError(f"answer over {s.max_answer_tokens} tokens")
        answer = completion.text.strip()
        if not answer:
            raise SampleError(f"{writer.name} wrote an empty answer")
        return answer

    def _finished(
        self,
        trace_id: str,
        question_id: str,
        m: Method,
        *,
        spans: list[Span],
        thinking: str,
        answer: str,
        switches: int,
        cost: dict[str, AuthorCost],
        attempts: int,
    ) -> Trace:
        """The trace of a sample that came out whole, rendered in the student's format."""
        text = f"<think>\n{thinking.strip()}\n</think>\n\n{answer}"
        return self._trace(
            trace_id,
            question_id,
            m,
            text=text,
            answer=answer,
            spans=spans,
            n_tokens=self.count(text),
            n_tokens_teacher=sum(sp.n_tokens for sp in spans if sp.author == "teacher"),
            n_tokens_student=sum(sp.n_tokens for sp in spans if sp.author == "student"),
            n_switches=switches,
            status="ok",
            error=None,
            attempts=attempts,
            cost=cost,
        )

    def _failed(
        self,
        trace_id: str,
        question_id: str,
        m: Method,
        *,
        error: str,
        attempts: int,
        cost: dict[str, AuthorCost],
    ) -> Trace:
        """The trace of a sample whose every attempt failed: no text, `error` says why, and `cost` what
        the attempts generated."""
        return self._trace(
            trace_id,
            question_id,
            m,
            text="",
            answer="",
            spans=[],
            n_tokens=0,
            n_tokens_teacher=0,
            n_tokens_student=0,
            n_switches=0,
            status="failed",
            error=error,
            attempts=attempts,
            cost=cost,
        )

    def _trace(
        self, trace_id: str, question_id: str, m: Method, cost: dict[str, AuthorCost], **outcome: Any
    ) -> Trace:
        """A trace of this sample by these models (and predictors, under TESSY) with `outcome`'s fields
        and the token totals of its `cost`."""
        student, teacher = self.writers["student"], self.writers["teacher"]
        ids = [w.predictor_id for w in (student, teacher) if w.predictor_id]
        return Trace(
            trace_id=trace_id,
            question_id=question_id,
            method=m.name,
            student_model=student.model,
            teacher_model=teacher.model,
            predictor_ids=",".join(ids) if m.thinker == "tessy" else "",
            n_wasted_tokens=sum(c.wasted for c in cost.values()),
            n_generated_tokens=sum(c.generated + c.failed for c in cost.values()),
            n_failed_tokens=sum(c.failed for c in cost.values()),
            cost=cost,
            **outcome,
        )


class _SingleAuthorCut:
    """`until` for a single author's thinking: stop right after its end-of-thinking marker, or as soon
    as the thinking ends in a repetition loop (looked for every `LOOP_CHECK_CHARS` new chars): that
    attempt fails either way, and the rest of its token budget would be generated for nothing. Each
    call scans only the new text for the marker, so a long stream costs linear time; a retried
    request's text is scanned from its start again."""

    LOOP_CHECK_CHARS = 200

    def __init__(self, family: Family, settings: Settings, thinking: str):
        self.family, self.settings, self.thinking = family, settings, thinking
        self.reach = max(len(m) for m in family.end_markers) - 1  # a marker may start this far back
        self.restart()

    def restart(self) -> None:
        self.scanned = 0
        self.looked = 0

    def __call__(self, text: str) -> int | None:
        start = max(0, self.scanned - self.reach)
        self.scanned = len(text)
        if hit := self.family.find_end(text[start:]):
            return start + hit[1]
        if len(text) - self.looked >= self.LOOP_CHECK_CHARS:
            self.looked = len(text)
            s = self.settings
            if find_loop(_tail_words(self.thinking + text, s), s.loop_ngram, s.loop_repeats) is not None:
                return len(text)
        return None


class _StreamCut:
    """`until` for stream mode. Every few new words it asks the predictor about the text so far, in
    the background: the stream keeps flowing while the predictor runs, and each sample has at most
    one question out, so the predictor sees every sample's latest text in one batch instead of one
    question per streamed event. Once an answer asks to switch, stop at the end of the word the cut
    falls in. An end-of-thinking marker stops the stream too, but a cut before it wins; with no cut
    yet, `_span` judges the text before the marker as a whole. A cut was judged on an earlier text:
    one that the grown text puts inside a code block (a fence half written then, or a word the cut
    was stretched to) is dropped. With `yields`, a text it holds at its first word (one that opens
    with a program) stops the stream there: the writer gives its turn away. When a retried request
    feeds the text from the start again, a cut judged on the old text is dropped, and so is the answer
    to a question about it still out."""

    def __init__(
        self,
        predict: Callable[[str], Awaitable[Cut]],
        no_cut: Callable[[str], tuple[Range, ...]],
        family: Family,
        settings: Settings,
        skipped: Callable[[str], int],
        yields: Callable[[str], bool] | None = None,
    ):
        self.predict, self.no_cut, self.family = predict, no_cut, family
        self.settings, self.skipped = settings, skipped
        self.opening = yields  # `yields` as each stream starts: it is dropped past the first word
        self.check: asyncio.Task[Cut] | None = None
        self.switched = False
        self.restart()
        # Set when a question comes back: the engine feeds the text so far again, so a cut stops the
        # stream then, not one streamed event (stream_interval tokens) later.
        self.wake = asyncio.Event()

    def restart(self) -> None:
        self.yields = self.opening
        self.checked_words = 0
        self.pending: int | None = None
        self.stale = self.check is not None  # the question out is about the old text

    def __call__(self, text: str) -> int | None:
        if self.yields is not None:
            if self.yields(text):
                self.switched = True
                return len(text)
            if len(text.split()) > 1:  # past its first word a text no longer opens with a program
                self.yields = None
        hit = self.family.find_end(text)
        if self.pending is None and self.check is not None and self.check.done():
            cut, self.check = self.check.result(), None
            if self.stale:
                self.stale = False
            elif cut.switch:
                self.pending = cut.keep  # an offset into an earlier text, which `text` extends
        if self.pending is not None:
            # The earlier text may have held the marker's first characters: clamp to its start.
            visible = text if hit is None else text[: hit[0]]
            keep = word_cut(
                visible,
                min(self.pending, len(visible)),
                self.settings.word_boundary,
                least=self.skipped(visible) + 1,
                closed=hit is not None,
            )
            growing = keep == len(text) and not text[-1].isspace()
            if not is_cut_point(keep, self.no_cut(visible)):
                self.pending = None
            elif hit:
                if not visible[keep:].strip():
                    return hit[1]  # the cut reaches the marker: none; the thinking ends
                self.switched = True
                return keep
            elif growing or (self.settings.word_boundary == "extend" and keep < self.pending):
                return None  # the word the cut falls in is still being written
            else:
                self.switched = True
                return keep
        if hit:
            return hit[1]
        words = len(text.split())
        if self.check is None and words - self.checked_words >= self.settings.check_every:
            self.checked_words = words
            self.check = asyncio.ensure_future(self.predict(text))
            self.check.add_done_callback(lambda _: self.wake.set())
        return None

    async def settle(self) -> None:
        """Wait for a question still out, so the predictor sees this sample's requests in order."""
        if self.check is not None:
            await asyncio.gather(self.check, return_exceptions=True)
            self.check = None
