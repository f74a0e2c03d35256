"""The TESSY state machine with scripted engines and predictors: exact spans, cuts, word extension,
the end-of-thinking hand-over and retries."""

import asyncio
import re

import pytest

from tessy.boundary.cut import Cut
from tessy.config import SynthesisConfig
from tessy.engines.base import Completion, Sampling, ask_until
from tessy.synthesis.machine import Settings, Synthesizer, Writer, find_loop, word_cut
from tessy.templates import GPT_OSS, QWEN3

STYLE_WORDS = {"Okay,", "let's", "see.", "Hmm,", "wait,", "So", "so", "Alright,"}


def count_words(text: str) -> int:
    return len(text.split())


class ScriptedEngine:
    """Replies with the next scripted text, streamed word by word through `until`."""

    def __init__(self, name: str, script: list[str]):
        self.name, self.script, self.prompts, self.params = name, list(script), [], []
        self.finishes: list[str] = []

    async def complete(self, prompt: str, params: Sampling, *, until=None) -> Completion:
        self.prompts.append(prompt)
        self.params.append(params)
        reply = self.script.pop(0)
        if until is not None:
            for match in re.finditer(r"\S+\s*", reply):
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

    def __init__(self):
        self.calls, self.released = [], []

    async def cut(self, key, context, new_text, role):
        self.calls.append((role, new_text))
        words = list(re.finditer(r"\S+", new_text))
        other = "capability" if role == "student" else "style"
        for word, nxt in zip(words, words[1:], strict=False):
            kind = "style" if nxt.group() in STYLE_WORDS else "capability"
            if kind == other:
                return Cut(word.end(), True)
        return Cut(len(new_text), False)

    def release(self, key):
        self.released.append(key)


def make(student_script, teacher_script, **settings):
    boundary = LexiconBoundary()
    student = Writer("student", ScriptedEngine("s", student_script), QWEN3, count_words, boundary, k=5)
    teacher = Writer("teacher", ScriptedEngine("t", teacher_script), GPT_OSS, count_words, boundary, k=10)
    synth = Synthesizer(student, teacher, Settings(**settings), count_words)
    return synth, student.engine, teacher.engine, boundary


def run(synth, method="tessy"):
    return asyncio.run(synth.run("trace-1", "q-1", "Sum two numbers.", method))


def test_fixed_k_spans_switches_and_student_answer():
    synth, student, teacher, boundary = make(
        ["Okay, let's see. We read", "So we print it.</think>", "```python\nprint(1)\n```<eos>"],
        ["We read a and b, add them. Hmm, wait", "then output the sum. So done"],
        mode="fixed-k",
    )
    trace = run(synth)
    assert [(s.author, s.text) for s in trace.spans] == [
        ("student", "Okay, let's see."),
        ("teacher", "We read a and b, add them."),
        ("student", "So we print it."),
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
        ["Okay, let's see. We read the input and more words", "So print.</think>", "done<eos>"],
        ["We read a and b. Hmm, wait more words here", "never used"],
        mode="stream",
        check_every=1,
    )
    trace = run(synth)
    assert [(s.author, s.text) for s in trace.spans] == [
        ("student", "Okay, let's see."),
        ("teacher", "We read a and b."),
        ("student", "So print."),
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


def test_predictor_cut_inside_a_word_is_extended():
    class MidWord(LexiconBoundary):
        async def cut(self, key, context, new_text, role):
            return Cut(3, True) if role == "student" else Cut(len(new_text), False)

    synth, student, teacher, _ = make(["Okaaay then", "ans<eos>"], [" We go.assistantfinal"], mode="fixed-k")
    for writer in synth.writers.values():
        writer.boundary = MidWord()
    trace = run(synth)
    assert [s.text for s in trace.spans] == ["Okaaay", " We go.", "ans"]


def test_teacher_end_of_thinking_hands_over_to_the_student():
    synth, student, teacher, _ = make(
        ["Okay, let's see. We", "The answer follows.<eos>"],
        ["We add. Done.assistantfinalprint(3)"],
        mode="fixed-k",
    )
    trace = run(synth)
    assert trace.spans[-2] == trace.spans[1] and trace.spans[1].text == "We add. Done."
    assert trace.spans[-1].author == "student" and trace.answer == "The answer follows."
    assert "assistantfinal" not in trace.text and "print(3)" not in trace.text


def test_failed_attempt_is_retried_with_a_new_seed():
    synth, student, teacher, _ = make(
        ["", "Okay, let's see.</think>", "ok<eos>"], [], mode="fixed-k", max_attempts=3
    )
    trace = run(synth)
    assert trace.status == "ok" and trace.attempts == 2
    assert student.params[0].seed != student.params[1].seed


def test_sample_fails_after_the_last_attempt_with_its_reasons():
    loop = "Okay, let's see again. " * 10
    synth, *_ = make([loop, loop], [], mode="fixed-k", max_attempts=2, loop_ngram=(3, 10))
    synth.writers["student"].boundary = None
    trace = run(synth, method="student-only")
    assert trace.status == "failed" and trace.attempts == 2 and trace.text == ""
    assert trace.error.count("repetition loop") == 2
    assert (trace.answer, trace.spans, trace.n_tokens, trace.n_switches, trace.cost) == ("", [], 0, 0, {})
    assert trace.n_tokens_student == trace.n_tokens_teacher == trace.n_wasted_tokens == 0
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
