"""The TESSY state machine with scripted engines and predictors: exact spans, cuts, word extension,
the end-of-thinking hand-over and retries."""

import asyncio
import random
import re
from dataclasses import replace

import pytest

from tessy.boundary.cut import Cut, code_blocks, find_cut
from tessy.boundary.labels import CAPABILITY, STYLE
from tessy.config import SynthesisConfig
from tessy.engines.base import Completion, Sampling, ask_until, restart
from tessy.synthesis.machine import (
    Settings,
    Synthesizer,
    Writer,
    _SingleAuthorCut,
    _StreamCut,
    find_loop,
    word_cut,
)
from tessy.synthesis.records import AuthorCost
from tessy.templates import GPT_OSS, QWEN3

STYLE_WORDS = {"Okay,", "let's", "see.", "Hmm,", "wait,", "So", "so", "Alright,"}


def count_words(text: str) -> int:
    return len(text.split())


class ScriptedEngine:
    """Replies with the next scripted text, streamed word by word through `until`."""

    piece = re.compile(r"\S+\s*")  # what arrives in one streamed event

    def __init__(self, name: str, script: list[str]):
        self.name, self.script, self.prompts, self.params = name, list(script), [], []
        self.finishes: list[str] = []

    def reply(self, prompt: str, params: Sampling) -> str:
        return self.script.pop(0)

    async def complete(self, prompt: str, params: Sampling, *, until=None) -> Completion:
        self.prompts.append(prompt)
        self.params.append(params)
        reply = self.reply(prompt, params)
        if until is not None:
            for match in self.piece.finditer(reply):
                cut = await ask_until(until, reply[: match.end()])
                if cut is not None:
                    self.finishes.append("cut")
                    return Completion(reply[:cut], count_words(reply[: match.end()]), "cut", self.name)
                await asyncio.sleep(0)  # the next word arrives later, as over a network
        finish = "stop" if reply.endswith("<eos>") else "length"
        self.finishes.append(finish)
        return Completion(reply.removesuffix("<eos>"), count_words(reply), finish, self.name)


class LexiconBoundary:
    """Words are tokens; a word's class is style when it is in STYLE_WORDS. Cuts by `find_cut`'s rule
    (docs/architecture.md, "the synthesis state machine")."""

    def __init__(self, lag: int = 0):
        self.calls, self.released, self.lag = [], [], lag

    async def cut(self, key, context, new_text, role, no_cut=()):
        self.calls.append((role, new_text))
        for _ in range(self.lag):  # a busy predictor answers some streamed words later
            await asyncio.sleep(0)
        classes, ends = self.labels(role, new_text)
        return find_cut(role, classes, ends, len(new_text), no_cut)

    def labels(self, role, new_text):
        """Per token, the predicted class of the next token, and the token's end."""
        words = list(re.finditer(r"\S+", new_text))
        # The class of the word after each word; the last word's successor is unknown.
        classes = [STYLE if nxt.group() in STYLE_WORDS else CAPABILITY for nxt in words[1:]] + [-1]
        return classes, [w.end() for w in words]

    def release(self, key):
        self.released.append(key)


def make(student_script, teacher_script, **settings):
    # The scripts test one rule at a time, cutting at any word; min_span_tokens has its own tests.
    settings.setdefault("min_span_tokens", 1)
    # Most scripts end on the student's marker; handing that over to the teacher has its own tests.
    settings.setdefault("student_ends_thinking", True)
    boundary = LexiconBoundary()
    student = Writer("student", ScriptedEngine("s", student_script), QWEN3, count_words, boundary, k=5)
    teacher = Writer("teacher", ScriptedEngine("t", teacher_script), GPT_OSS, count_words, boundary, k=10)
    synth = Synthesizer(student, teacher, Settings(**settings), count_words)
    return synth, student.engine, teacher.engine, boundary


def run(synth, method="tessy"):
    return asyncio.run(synth.run("trace-1", "q-1", "Sum two numbers.", method))


def test_fixed_k_spans_switches_and_student_answer():
    synth, student, teacher, boundary = make(
        ["Okay, let's see. We read", "So let's see.</think>", "```python\nprint(1)\n```<eos>"],
        ["We read a and b, add them. Hmm, wait", "then output the sum. So done"],
        mode="fixed-k",
    )
    trace = run(synth)
    assert [(s.author, s.text) for s in trace.spans] == [
        ("student", "Okay, let's see."),
        ("teacher", "We read a and b, add them."),
        ("student", "So let's see."),
        ("student", "```python\nprint(1)\n```"),
    ]
    assert trace.status == "ok" and trace.n_switches == 2 and trace.attempts == 1
    # The student continues the shared text from its own prompt; the teacher from its own.
    assert teacher.prompts[0] == GPT_OSS.thinking_prompt("Sum two numbers.") + "Okay, let's see."
    assert student.prompts[1].endswith("<think>\nOkay, let's see.We read a and b, add them.")
    # The answer is the student's, written after the thinking closed in the student's format.
    assert student.prompts[2] == QWEN3.answer_prompt(
        "Sum two numbers.", trace.text.split("\n</think>")[0][8:]
    )
    assert trace.answer == "```python\nprint(1)\n```"
    assert trace.text.startswith("<think>\nOkay, let's see.We read") and trace.text.endswith(trace.answer)
    assert [p.max_tokens for p in student.params[:2]] == [5, 5] and teacher.params[0].max_tokens == 10
    # Rolled-back words count as waste: " We read" (2) and " Hmm, wait" (2).
    assert trace.cost["student"].wasted == 2 and trace.cost["teacher"].wasted == 2
    assert trace.n_tokens_teacher + trace.n_tokens_student == sum(s.n_tokens for s in trace.spans)
    assert set(boundary.released) == {"trace-1"}  # each predictor forgets the sample


def test_stream_mode_stops_the_request_at_the_cut():
    synth, student, teacher, _ = make(
        ["Okay, let's see. We read the input and more words", "So let's see.</think>", "done<eos>"],
        ["We read a and b. Hmm, wait more words here", "never used"],
        mode="stream",
        check_every=1,
    )
    trace = run(synth)
    assert [(s.author, s.text) for s in trace.spans] == [
        ("student", "Okay, let's see."),
        ("teacher", "We read a and b."),
        ("student", "So let's see."),
        ("student", "done"),
    ]
    # Both streams were cut where the predictor asked, not run to their ends.
    assert student.finishes[0] == "cut" and teacher.finishes == ["cut"] and teacher.script == ["never used"]


def test_word_cut_never_splits_a_word():
    assert word_cut("compu ting", 3, "extend") == 5
    assert word_cut("hello compu", 9, "extend") == 5  # at the end: the word may still be growing
    assert word_cut("hello compu ting", 9, "drop") == 5
    assert word_cut("hello world", 5, "extend") == 5
    assert word_cut("abc def", 2, "drop") == 3  # a span keeps at least its first word, whole
    assert word_cut(" x y", 0, "extend") == 2
    assert word_cut("\n\n", 1, "extend") == 1  # no word at all: nothing to protect
    assert word_cut("hello compu ting", 8, "extend") == 11
    # A text that ends where its marker begins ends with a whole word.
    assert word_cut("We add. Done.", 10, "extend") == 7
    assert word_cut("We add. Done.", 10, "extend", closed=True) == 13
    assert word_cut("We add. Done.", 13, "drop", closed=True) == 13
    # The first `least` words are kept whole, even by `drop`; all of them when there are fewer.
    assert word_cut("A B compu ting", 2, "drop", least=2) == 3
    assert word_cut("A B compu ting", 7, "drop", least=2) == 3
    assert word_cut("A B", 1, "extend", least=3) == 3


def test_predictor_cut_inside_a_word_is_extended():
    class MidWord(LexiconBoundary):
        async def cut(self, key, context, new_text, role, no_cut=()):
            return Cut(3, True) if role == "student" else Cut(len(new_text), False)

    synth, student, teacher, _ = make(["Okaaay then", "ans<eos>"], [" We go.assistantfinal"], mode="fixed-k")
    for writer in synth.writers.values():
        writer.boundary = MidWord()
    trace = run(synth)
    assert [s.text for s in trace.spans] == ["Okaaay", " We go.", "ans"]


MODES = {"fixed-k": {"mode": "fixed-k"}, "stream": {"mode": "stream", "check_every": 1}}


def spans_of(trace):
    return [(s.author, s.text) for s in trace.spans]


@pytest.mark.parametrize("mode", MODES)
def test_teacher_end_of_thinking_hands_over_to_the_student(mode):
    synth, student, teacher, _ = make(
        ["Okay, let's see. We", "The answer follows.<eos>"],
        ["We add. Done.assistantfinalprint(3)"],
        **MODES[mode],
    )
    trace = run(synth)
    assert spans_of(trace) == [
        ("student", "Okay, let's see."),
        ("teacher", "We add. Done."),
        ("student", "The answer follows."),
    ]
    assert trace.n_switches == 1 and trace.answer == "The answer follows."
    assert "assistantfinal" not in trace.text and "print(3)" not in trace.text


@pytest.mark.parametrize("ending", ["</think>", "<eos>"])
@pytest.mark.parametrize("mode", MODES)
def test_a_students_end_of_thinking_hands_over_to_the_teacher(mode, ending):
    """By default the student does not end a TESSY thinking: its marker (or end of sequence) goes,
    its text stays, and the teacher writes on until it ends the thinking itself."""
    synth, student, teacher, _ = make(
        ["Okay, let's see. We", f" So let's see.{ending}", "ans<eos>"],
        ["We add them. So", " Then print.assistantfinal"],
        student_ends_thinking=False,
        **MODES[mode],
    )
    trace = run(synth)
    assert spans_of(trace) == [
        ("student", "Okay, let's see."),
        ("teacher", "We add them."),
        ("student", " So let's see."),
        ("teacher", " Then print."),
        ("student", "ans"),
    ]
    assert trace.n_switches == 3
    assert teacher.prompts[1] == GPT_OSS.thinking_prompt("Sum two numbers.") + (
        "Okay, let's see.We add them. So let's see."
    )


def test_a_student_that_only_ends_the_thinking_hands_over_without_a_span():
    synth, student, teacher, _ = make(
        ["Okay, let's see. We", "</think>", "ans<eos>"],
        ["We add them. So", " Done.assistantfinal"],
        student_ends_thinking=False,
        mode="fixed-k",
    )
    trace = run(synth)
    assert spans_of(trace) == [
        ("student", "Okay, let's see."),
        ("teacher", "We add them. Done."),
        ("student", "ans"),
    ]
    assert trace.status == "ok" and trace.attempts == 1


def test_baselines_end_where_their_one_author_ends_whatever_student_ends_thinking_says():
    synth, *_ = make(["We add.</think>", "ans<eos>"], [], student_ends_thinking=False)
    trace = run(synth, method="student-only")
    assert spans_of(trace) == [("student", "We add."), ("student", "ans")]


@pytest.mark.parametrize("lag", [0, 5])
@pytest.mark.parametrize("ending", ["assistantfinalprint(3)", "<eos>"])
@pytest.mark.parametrize("mode", MODES)
def test_a_cut_before_the_end_of_thinking_wins(mode, ending, lag):
    """The teacher writes on past a style word into its marker (or its end of sequence): the cut
    comes first, so the end goes with the cut-off text and the student thinks on."""
    synth, student, teacher, boundary = make(
        ["Okay, let's see. We", "So let's see.</think>", "ans<eos>"],
        [f"We add them. So done.{ending}"],
        **MODES[mode],
    )
    boundary.lag = lag  # a late predictor: the stream reaches the end before the cut is known
    trace = run(synth)
    assert spans_of(trace) == [
        ("student", "Okay, let's see."),
        ("teacher", "We add them."),
        ("student", "So let's see."),
        ("student", "ans"),
    ]
    assert trace.n_switches == 2
    assert student.prompts[1] == QWEN3.thinking_prompt("Sum two numbers.") + "Okay, let's see.We add them."
    assert trace.cost["teacher"].wasted == 2  # " So done." with what followed it


@pytest.mark.parametrize("mode", MODES)
def test_a_cut_with_only_whitespace_before_the_marker_ends_the_thinking(mode):
    class AfterDone(LexiconBoundary):
        async def cut(self, key, context, new_text, role, no_cut=()):
            at = new_text.find("Done.")
            return (
                Cut(at + 5, True)
                if role == "teacher" and at >= 0
                else await super().cut(key, context, new_text, role, no_cut)
            )

    synth, student, teacher, _ = make(
        ["Okay, let's see. We", "ans<eos>"], ["We add. Done. \n\nassistantfinal print(3)"], **MODES[mode]
    )
    for writer in synth.writers.values():
        writer.boundary = AfterDone()
    trace = run(synth)
    assert spans_of(trace) == [
        ("student", "Okay, let's see."),
        ("teacher", "We add. Done. \n\n"),
        ("student", "ans"),
    ]
    # The student answers after exactly its format's whitespace.
    assert student.prompts[-1].endswith("We add. Done.\n</think>\n\n")
    assert trace.text == "<think>\nOkay, let's see.We add. Done.\n</think>\n\nans"


@pytest.mark.parametrize("mode", MODES)
def test_a_markerless_end_of_sequence_ends_the_thinking_under_tessy(mode):
    synth, student, teacher, _ = make(
        ["Okay, let's see. We", "ans<eos>"], ["We add them.<eos>"], **MODES[mode]
    )
    trace = run(synth)
    assert spans_of(trace) == [
        ("student", "Okay, let's see."),
        ("teacher", "We add them."),
        ("student", "ans"),
    ]
    assert teacher.finishes == ["stop"] and trace.n_switches == 1


def test_a_markerless_end_of_sequence_ends_a_single_authors_thinking():
    synth, student, teacher, _ = make([], ["We add. Done. <eos>", "final code<eos>"])
    trace = run(synth, method="teacher-only")
    assert spans_of(trace) == [("teacher", "We add. Done. "), ("teacher", "final code")]
    assert teacher.prompts[1] == GPT_OSS.answer_prompt("Sum two numbers.", "We add. Done.")


def test_a_family_whose_end_of_sequence_is_no_end_of_thinking_goes_on():
    synth, student, *_ = make(["Okay, let's see.<eos>", " We add.</think>", "ans<eos>"], [])
    synth.writers["student"].family = replace(QWEN3, eos_ends_thinking=False)
    trace = run(synth, method="student-only")
    assert spans_of(trace) == [("student", "Okay, let's see. We add."), ("student", "ans")]
    assert student.prompts[1] == QWEN3.thinking_prompt("Sum two numbers.") + "Okay, let's see."


@pytest.mark.parametrize("mode", MODES)
def test_an_end_of_thinking_marker_split_by_the_token_cap_is_written_whole_next(mode):
    """The teacher's reply runs into its cap after "assistant", the first half of GPT-OSS's marker
    as served. That half is kept back, so the next request writes the whole marker and the thinking
    ends there. (Kept, the next request's "final..." held no marker: the teacher's answer went into
    the thinking, 11 of 199 TESSY traces on the fidelity bench.)"""
    synth, student, teacher, _ = make(
        ["Okay, let's see. We", "ans<eos>"], ["We add them. Done.assistant", "assistantfinal"], **MODES[mode]
    )
    trace = run(synth)
    assert spans_of(trace) == [
        ("student", "Okay, let's see."),
        ("teacher", "We add them. Done."),
        ("student", "ans"),
    ]
    assert teacher.prompts[1].endswith("Okay, let's see.We add them. Done.")
    assert trace.cost["teacher"].wasted == 1  # the word "Done.assistant" held back, written again


@pytest.mark.parametrize("mode", MODES)
def test_min_span_tokens_keeps_a_spans_first_words_uncut(mode):
    """With min_span_tokens=3 neither "Okay," nor "We" (each followed by the other kind) is a cut
    point: each span ends at the next cut point after its third word."""
    synth, *_ = make(
        ["Okay, We let's see. We read", "So let's see.</think>", "ans<eos>"],
        ["We So add them. Hmm, wait"],
        min_span_tokens=3,
        **MODES[mode],
    )
    trace = run(synth)
    assert spans_of(trace) == [
        ("student", "Okay, We let's see."),
        ("teacher", "We So add them."),
        ("student", "So let's see."),
        ("student", "ans"),
    ]


@pytest.mark.parametrize("lag", [0, 5])
@pytest.mark.parametrize("mode", MODES)
def test_a_code_block_in_the_thinking_is_never_cut(mode, lag):
    """The teacher's predictor sees style ("So") inside its code draft: by default that is no cut
    point, so the span ends after the closing fence, at the next style word. With `cut_in_code` the
    student would be handed half a program."""
    teacher_reply = "We add:\n```python\nSo = 1\nprint(So)\n```\nSo done."
    student_script = ["Okay, let's see. We", "So let's see.</think>", "ans<eos>"]
    synth, _, _, boundary = make(student_script, [teacher_reply], **MODES[mode])
    boundary.lag = lag
    assert spans_of(run(synth))[1] == ("teacher", "We add:\n```python\nSo = 1\nprint(So)\n```")
    synth, *_ = make(student_script, [teacher_reply], cut_in_code=True, **MODES[mode])
    assert spans_of(run(synth))[1] == ("teacher", "We add:\n```python")


class FenceBlind(LexiconBoundary):
    """Words and whitespace runs are tokens. A word's class is the next word's (as LexiconBoundary);
    the teacher's predictor also reads the whitespace before a code fence, and a backtick ending the
    text (a fence half streamed), as the end of its clause."""

    def labels(self, role, new_text):
        tokens = list(re.finditer(r"\S+|\s+", new_text))
        classes = []
        for i, tok in enumerate(tokens):
            nxt = next((t.group() for t in tokens[i + 1 :] if not t.group().isspace()), "")
            if role == "teacher" and (
                (tok.group().isspace() and nxt.startswith("```")) or (not nxt and tok.group().endswith("`"))
            ):
                classes.append(STYLE)
            else:  # the last word's successor is unknown
                classes.append(-1 if not nxt else STYLE if nxt in STYLE_WORDS else CAPABILITY)
        return classes, [t.end() for t in tokens]


class CharByChar(ScriptedEngine):
    piece = re.compile(".", re.S)


FENCED = "Add:\n```python\nx = 1\n```\nSo done."
STUDENT = ["Okay, let's see. We", "So let's see.</think>", "ans<eos>"]


@pytest.mark.parametrize("mode", MODES)
def test_a_min_span_never_stretches_a_cut_into_a_code_fence(mode):
    """The teacher's predictor asks for a switch on the line break after its span's first word, right
    before a fence. With min_span_tokens=2 that is no cut point: the span's first cut point lies in
    its second word, here the fence, inside the block. (The switch once counted as a cut after the
    first word, stretched to the second word's end: the teacher kept "```python" and the student
    wrote the program.)"""
    synth, *_ = make(STUDENT, [FENCED], min_span_tokens=2, **MODES[mode])
    for writer in synth.writers.values():
        writer.boundary = FenceBlind()
    assert spans_of(run(synth)) == [
        ("student", "Okay, let's see."),
        ("teacher", "Add:\n```python\nx = 1\n```"),
        ("student", "So let's see."),
        ("student", "ans"),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_a_students_short_span_ends_before_a_program_it_opens(mode):
    """The teacher hands over mid-sentence; the student's "So here:" opens a code block in its third
    word. With min_span_tokens=3 its first cut point used to lie in that word, inside the block: the
    student wrote the whole program (its own, the weaker one) before the span could end. The word
    before the fence is a cut point now, and the teacher writes the program. A teacher's span keeps a
    program it opens (test_a_min_span_never_stretches_a_cut_into_a_code_fence)."""
    synth, *_ = make(
        ["Okay, let's see. We", "So here:\n```python\nx = 0\n```\nSo done.", "So let's see.</think>"]
        + ["ans<eos>"],
        ["We add them, the code looks So", "\n```python\nx = 1\n```\nHmm, wait"],
        min_span_tokens=3,
        **MODES[mode],
    )
    assert spans_of(run(synth)) == [
        ("student", "Okay, let's see."),
        ("teacher", "We add them, the code looks"),
        ("student", "So here:"),
        ("teacher", "\n```python\nx = 1\n```"),
        ("student", "So let's see."),
        ("student", "ans"),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_a_student_span_never_opens_with_a_program(mode):
    """Handed the teacher's finished line, the student opens a code block at once: no cut point comes
    before its closing fence, so the span would be the student's own program. The student keeps
    nothing (its tokens count as waste) and the teacher writes the program; the spans and the switch
    count show no empty student turn. A stream stops at the fence."""
    synth, student, teacher, _ = make(
        ["Okay, let's see. We", "\n```python\nx = 0\n```\nSo done.", "So let's see.</think>", "ans<eos>"],
        ["We add them. Hmm,", "\n```python\nx = 1\n```\nHmm, wait"],
        **MODES[mode],
    )
    trace = run(synth)
    assert spans_of(trace) == [
        ("student", "Okay, let's see."),
        ("teacher", "We add them.\n```python\nx = 1\n```"),
        ("student", "So let's see."),
        ("student", "ans"),
    ]
    assert trace.n_switches == 2 and "x = 0" not in trace.text
    if mode == "stream":  # the stream stops at the fence: the program is never written
        assert student.finishes[1] == "cut" and trace.cost["student"].wasted == count_words("We ```python")
    else:
        assert trace.cost["student"].wasted >= count_words("\n```python\nx = 0\n```")


@pytest.mark.parametrize("lag", [0, 3])
def test_a_stream_cut_judged_on_a_half_written_fence_is_dropped(lag):
    """Streamed char by char, the teacher's text is checked when it ends in "\n`": no fence yet, so
    the predictor's switch after the backtick is a cut point. Once the word is whole it is
    "```python", the opening of a block: the cut is dropped and the teacher keeps its program."""
    synth, *_ = make(STUDENT, [FENCED], mode="stream", check_every=1, min_span_tokens=2)
    synth.writers["teacher"].engine = teacher = CharByChar("t", [FENCED])
    for writer in synth.writers.values():
        writer.boundary = FenceBlind(lag)
    assert spans_of(run(synth)) == [
        ("student", "Okay, let's see."),
        ("teacher", "Add:\n```python\nx = 1\n```"),
        ("student", "So let's see."),
        ("student", "ans"),
    ]
    # The predictor was asked about the half-written fence, and its switch there did not stop the stream.
    assert ("teacher", "`") in synth.writers["teacher"].boundary.calls
    assert teacher.finishes == ["cut"]


def test_code_blocks_are_found_from_a_fence_before_the_new_text():
    text = "Plan.\n```python\nx = 1\n```\nThen\n```\ny"
    assert code_blocks(text) == ((6, 25), (31, 37))  # the open block runs past the text's end
    assert code_blocks(text, 10) == ((0, 15), (21, 27))  # the first block opened before offset 10
    assert code_blocks("a ``` inline b") == ()  # a fence opens only at a line's start
    assert find_cut("teacher", [STYLE, STYLE], [8, 25], 30, no_cut=((6, 25),)) == Cut(25, True)
    assert find_cut("teacher", [STYLE], [6], 30, no_cut=((6, 25),)) == Cut(6, True)  # before the fence
    # A stream checked mid-program: the predictor's switch at the text's end is no cut either.
    for text in ("We add:\n```python", "We add:\n```python\nx = 1\nprint(x)"):
        assert find_cut("teacher", [STYLE], [len(text)], len(text), code_blocks(text)) == Cut(
            len(text), False
        )


def test_min_span_tokens_counts_the_whole_span_not_one_request():
    synth, student, *_ = make(
        ["Okay, We", " let's see. We read", "So let's see.</think>", "ans<eos>"],
        ["We add them. Hmm, wait"],
        mode="fixed-k",
        min_span_tokens=3,
    )
    trace = run(synth)
    # "Okay, We" is too short to cut; the next request's words count on from it.
    assert spans_of(trace)[:2] == [("student", "Okay, We let's see."), ("teacher", "We add them.")]
    assert student.prompts[1].endswith("<think>\nOkay, We")


class Babbler(ScriptedEngine):
    """Random words, style with probability `p_style`; past `length` words of prompt it writes a few
    more and its end-of-thinking marker; after its format's closer, an answer."""

    def __init__(self, family, seed, p_style, length=300):
        super().__init__(family.name, [])
        self.family, self.rng, self.p_style, self.length = family, random.Random(seed), p_style, length

    def reply(self, prompt, params):
        if prompt.endswith(self.family.closer):
            return "ans<eos>"
        done = len(prompt.split()) > self.length
        n = min(params.max_tokens, 3) if done else params.max_tokens
        style, other = sorted(STYLE_WORDS), ["we", "add", "the", "sum", "of", "a", "b", "print", "read"]
        words = [self.rng.choice(style if self.rng.random() < self.p_style else other) for _ in range(n)]
        return " " + " ".join(words) + (self.family.end_markers[-1] if done else "")


@pytest.mark.parametrize("mode", MODES)
def test_a_larger_min_span_tokens_means_fewer_switches(mode):
    switches = []
    for min_span in (1, 2, 3, 4):
        total = 0
        for seed in range(5):
            boundary = LexiconBoundary()
            student = Writer("student", Babbler(QWEN3, seed, 0.6), QWEN3, count_words, boundary, k=5)
            teacher = Writer(
                "teacher", Babbler(GPT_OSS, seed + 100, 0.15), GPT_OSS, count_words, boundary, k=10
            )
            synth = Synthesizer(
                student, teacher, Settings(min_span_tokens=min_span, **MODES[mode]), count_words
            )
            trace = run(synth)
            assert trace.status == "ok", trace.error
            # Every span that a cut ended has at least min_span words.
            assert all(len(s.text.split()) >= min_span for s in trace.spans[:-2])
            total += trace.n_switches
        switches.append(total)
    assert switches == sorted(switches, reverse=True) and switches[-1] < switches[0], switches


def test_failed_attempt_is_retried_with_a_new_seed():
    synth, student, teacher, _ = make(
        ["", "Okay, let's see.</think>", "ok<eos>"], [], mode="fixed-k", max_attempts=3
    )
    trace = run(synth)
    assert trace.status == "ok" and trace.attempts == 2
    assert student.params[0].seed != student.params[1].seed


def test_an_answer_that_closes_a_thinking_again_stops_there_and_fails_its_attempt():
    """The answer's stream stops at the marker, not at its token cap: its 4 words count as failed."""
    runaway = "print(3)\n</think>\n\nprint(3) print(3) print(3)<eos>"
    synth, student, _, _ = make(["We add.</think>", runaway, "We add.</think>", "print(3)<eos>"], [])
    synth.writers["student"].boundary = None
    trace = run(synth, method="student-only")
    assert trace.status == "ok" and trace.attempts == 2 and trace.answer == "print(3)"
    assert student.finishes == ["cut", "cut", "cut", "stop"]  # thinking, answer, thinking, answer
    assert trace.cost["student"] == AuthorCost(generated=3, wasted=0, requests=2, failed=2 + 2)


def test_every_generated_token_is_counted_failed_attempts_included():
    loop = "Okay, let's see again. " * 10  # 40 words
    synth, *_ = make([loop, "We add.</think>", "ok<eos>"], [], mode="fixed-k", loop_ngram=(3, 10))
    synth.writers["student"].boundary = None
    trace = run(synth, method="student-only")
    assert trace.status == "ok" and trace.attempts == 2
    # The second attempt: 2 words of thinking and 1 of answer; the first, failed, 35: its stream was
    # stopped at the first loop check after the loop (every 200 chars), not run to its 40 words.
    assert trace.cost["student"] == AuthorCost(generated=3, wasted=0, requests=2, failed=35)
    assert (trace.n_generated_tokens, trace.n_failed_tokens, trace.n_wasted_tokens) == (38, 35, 0)


def test_a_single_authors_loop_stops_its_stream_not_its_token_budget():
    """A teacher-only thinking that loops for 4,000 words is stopped within 200 chars of the loop being
    complete (8 repeats of a 4-word n-gram: 32 words), in every attempt."""
    loop = "We add them again. " * 1000
    synth, _, teacher, _ = make([], [loop, loop], max_attempts=2)
    trace = run(synth, method="teacher-only")
    assert trace.status == "failed" and trace.error.count("repetition loop") == 2
    assert teacher.finishes == ["cut", "cut"]
    assert 2 * 32 <= trace.cost["teacher"].failed <= 2 * (32 + 200 // len("again. "))


def test_a_single_authors_marker_streamed_char_by_char_is_found():
    synth, *_ = make([], [])
    synth.writers["teacher"].engine = teacher = CharByChar(
        "t", ["We add. Done.assistantfinal ignored", "ans<eos>"]
    )
    trace = run(synth, method="teacher-only")
    assert spans_of(trace) == [("teacher", "We add. Done."), ("teacher", "ans")]
    assert teacher.finishes == ["cut", "stop"]


def test_a_thinking_that_ends_inside_an_open_code_block_fails_its_attempt():
    synth, _, teacher, _ = make(
        [], ["We add.\n```python\nprint(1)\nassistantfinal", "We add.assistantfinal", "x<eos>"]
    )
    trace = run(synth, method="teacher-only")
    assert trace.status == "ok" and trace.attempts == 2
    assert spans_of(trace) == [("teacher", "We add."), ("teacher", "x")]
    assert len(teacher.prompts) == 3  # no answer was asked for after the open block


def test_a_single_authors_marker_is_found_in_a_retried_requests_shorter_text():
    """The engine feeds a request retried on another endpoint from the start: its marker may lie
    before where the broken-off stream's text was scanned to."""
    until = _SingleAuthorCut(GPT_OSS, Settings(), "")
    assert until("We add them and print the sum. " * 3) is None
    restart(until)
    text = "Done.assistantfinal x"
    assert until(text) == GPT_OSS.find_end(text)[1]


def test_a_stream_cut_judged_before_a_retry_is_dropped():
    """A cut asked for on a broken-off stream's text is an offset into that text: the retried
    request's text, fed from the start, is judged again, not cut there."""

    async def predict(text: str) -> Cut:
        return Cut(keep=len("Okay,"), switch=text.startswith("Okay,"))

    async def go():
        until = _StreamCut(predict, lambda text: (), QWEN3, Settings(check_every=1), lambda text: 0)
        assert until("Okay, let") is None  # asks the predictor in the background
        await asyncio.sleep(0)  # its answer, a switch after "Okay,", is back
        restart(until)
        assert until("We add") is None  # drops that answer, asks about this text
        await asyncio.sleep(0)
        return until("We add them")

    assert asyncio.run(go()) is None


def test_sample_fails_after_the_last_attempt_with_its_reasons():
    loop = "Okay, let's see again. " * 10
    synth, *_ = make([loop, loop], [], mode="fixed-k", max_attempts=2, loop_ngram=(3, 10))
    synth.writers["student"].boundary = None
    trace = run(synth, method="student-only")
    assert trace.status == "failed" and trace.attempts == 2 and trace.text == ""
    assert trace.error.count("repetition loop") == 2
    assert (trace.answer, trace.spans, trace.n_tokens, trace.n_switches) == ("", [], 0, 0)
    assert trace.n_tokens_student == trace.n_tokens_teacher == trace.n_wasted_tokens == 0
    # What the two attempts generated is still counted: 35 words each, up to the loop check.
    assert trace.cost == {"student": AuthorCost(failed=70), "teacher": AuthorCost()}
    assert trace.n_generated_tokens == trace.n_failed_tokens == 70
    assert (trace.trace_id, trace.question_id, trace.method) == ("trace-1", "q-1", "student-only")


def test_baselines_use_one_author_for_thinking_and_render_in_the_student_format():
    synth, student, teacher, _ = make([], ["We add. Done.assistantfinalprint(3)", "final code<eos>"])
    trace = run(synth, method="teacher-only")
    assert [s.author for s in trace.spans] == ["teacher", "teacher"]
    assert trace.text == "<think>\nWe add. Done.\n</think>\n\nfinal code"
    assert teacher.prompts[1] == GPT_OSS.answer_prompt("Sum two numbers.", "We add. Done.")
    assert trace.predictor_ids == ""


@pytest.mark.parametrize(
    ("words", "expected"),
    [("a b c " * 8, 3), ("a b c " * 7, None), ("x y " + "p q r s " * 8, 4)],
)
def test_loop_detection(words, expected):
    assert find_loop(words.split(), (3, 50), 8) == expected


SYNTHESIS_SETTINGS = (
    "mode",
    "span_cap",
    "check_every",
    "max_thinking_tokens",
    "max_answer_tokens",
    "word_boundary",
    "min_span_tokens",
    "max_attempts",
)


def test_settings_from_config_carries_every_setting():
    config = SynthesisConfig(
        mode="fixed-k",
        span_cap=32,
        check_every=3,
        max_thinking_tokens=100,
        max_answer_tokens=50,
        word_boundary="drop",
        min_span_tokens=3,
        max_attempts=2,
        temperature=0.3,
        top_p=0.9,
        top_k=5,
        min_p=0.1,
    )
    settings = Settings.from_config(config)
    assert {name: getattr(settings, name) for name in SYNTHESIS_SETTINGS} == {
        name: getattr(config, name) for name in SYNTHESIS_SETTINGS
    }
    assert settings.sampling == Sampling(temperature=0.3, top_p=0.9, top_k=5, min_p=0.1)
    # Loop detection has no config setting.
    assert (settings.loop_ngram, settings.loop_repeats) == (Settings().loop_ngram, Settings().loop_repeats)


def test_settings_defaults_are_the_configs():
    settings, config = Settings(), SynthesisConfig()
    for name in SYNTHESIS_SETTINGS:
        assert getattr(settings, name) == getattr(config, name), name
