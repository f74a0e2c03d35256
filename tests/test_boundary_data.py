"""Boundary predictors, the data side: windows, segment sampling, annotation, labels, metrics."""

import asyncio
import dataclasses
import json
import random

import pytest

from tessy.boundary import (
    MICROWORLD,
    Lexicon,
    Window,
    annotate_llm,
    annotation_prompt,
    cut_windows,
    dedup,
    load_windows,
    sample_segments,
    save_windows,
    score,
)
from tessy.boundary.annotate import AnnotationError, locate, parse_phrases
from tessy.boundary.base import train_tokenizer
from tessy.boundary.dataset import encode
from tessy.boundary.labels import IGNORE, shift, token_labels
from tessy.boundary.windows import mixed_windows, splice


@dataclasses.dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0
    seed: int | None = None


@dataclasses.dataclass
class Completion:
    text: str


class ScriptedEngine:
    """An Engine look-alike: answers from a function of the prompt, records what it was asked."""

    def __init__(self, answer):
        self.answer = answer
        self.calls: list[tuple[str, Sampling]] = []

    async def complete(self, prompt, params, *, until=None):
        self.calls.append((prompt, params))
        await asyncio.sleep(0)
        return Completion(self.answer(prompt))


def _text(n_words: int) -> str:
    return " ".join(f"w{i}" for i in range(n_words))


def test_cut_windows_sizes_offsets_and_determinism():
    text = _text(200)
    windows = cut_windows(text, words=60, per_response=5, seed=3)
    assert len(windows) == 5
    for w in windows:
        assert len(w.text.split()) == 60
        assert text[w.start : w.start + len(w.text)] == w.text
    assert len({w.start for w in windows}) == 5
    assert windows == cut_windows(text, words=60, per_response=5, seed=3)
    assert windows != cut_windows(text, words=60, per_response=5, seed=4)
    # More windows asked than offsets exist: every offset once.
    assert len(cut_windows(_text(62), words=60, per_response=100)) == 3
    short = cut_windows("just three words", words=60)
    assert [w.text for w in short] == ["just three words"]
    assert cut_windows("   ", words=60) == []


def test_cut_windows_carries_clipped_gold_spans():
    text = "Okay, let's see. We add 1 and 2. So the sum is 3. Hmm, wait, it is 3."
    spans = [(0, 16), (33, 35), (50, 60)]
    assert [text[a:b] for a, b in spans] == ["Okay, let's see.", "So", "Hmm, wait,"]
    windows = cut_windows(text, words=3, per_response=100, spans=spans)
    assert len(windows) == 16
    for w in windows:
        for a, b in w.spans:
            assert any(s <= w.start + a < w.start + b <= e for s, e in spans)
    # Every gold char inside a window is covered by that window's spans: clipping loses nothing.
    for w in windows:
        gold = {i - w.start for s, e in spans for i in range(s, e) if w.start <= i < w.start + len(w.text)}
        assert gold == {i for a, b in w.spans for i in range(a, b)}
    assert any(w.spans == () for w in windows) and any(len(w.spans) == 1 for w in windows)


def test_dedup_by_content_ignoring_whitespace():
    a, b, c = Window("so  we add"), Window("so we add\n"), Window("so we subtract")
    assert dedup([a, b, c, a]) == [a, c]


def _styled(text: str, *style: str) -> Window:
    return Window(text, spans=tuple((text.index(s), text.index(s) + len(s)) for s in style))


class _Pick(random.Random):
    """Picks from a list by a fixed script of indexes, to choose the splice's kind and offsets."""

    def __init__(self, *picks: int) -> None:
        super().__init__(0)
        self.picks = list(picks)

    def choice(self, seq):
        return seq[self.picks.pop(0)]


def test_splice_hands_over_at_span_boundaries_with_both_parts_labels():
    teacher = _styled("We sort the list. Then the answer is the first item.", " Then")
    student = _styled("Okay so we count them. Hmm, wait we need the max.", "Okay so", " Hmm, wait")
    # At a span's start: the teacher's capability text, then the student's style span and on.
    at_start = splice(teacher, student, _Pick(0, 0, 0))
    assert at_start.text == "We sort the list. Hmm, wait we need the max."
    assert [at_start.text[a:b] for a, b in at_start.spans] == [" Hmm, wait"]
    # At a span's end: the student's style, then the teacher's capability text after its own style.
    at_end = splice(student, teacher, _Pick(1, 0, 0))
    assert at_end.text == "Okay so the answer is the first item."
    assert [at_end.text[a:b] for a, b in at_end.spans] == ["Okay so"]
    assert splice(Window("no style here", spans=()), student, random.Random(0)) is None
    with pytest.raises(ValueError, match="annotated"):
        splice(Window("plain"), student, random.Random(0))


def test_mixed_windows_are_distinct_and_labelled():
    own = [_styled(f"We add {i} numbers. So the sum is {i}.", " So") for i in range(5)]
    other = [_styled(f"Hmm okay, {i} plus one. Right so done.", "Hmm okay,", " Right so") for i in range(5)]
    mixed = mixed_windows(own, other, 20, seed=1)
    assert 1 < len(mixed) <= 20 and len(dedup(mixed)) == len(mixed)
    assert all(w.spans and w.source for w in mixed)
    assert mixed == mixed_windows(own, other, 20, seed=1) and mixed_windows(own, [], 20, seed=1) == []


def test_window_rejects_bad_spans():
    with pytest.raises(ValueError, match="style spans"):
        Window("abc", spans=((0, 5),))
    with pytest.raises(ValueError, match="style spans"):
        Window("abcdef", spans=((2, 4), (3, 5)))


def test_save_and_load_windows_round_trip(tmp_path):
    windows = [Window("Okay so x", "h1", 4, ((0, 4),)), Window("plain", "h2", 0)]
    save_windows(tmp_path / "w.jsonl", windows)
    assert load_windows(tmp_path / "w.jsonl") == windows
    (tmp_path / "bad.jsonl").write_text(json.dumps({"text": "ab", "spans": [[1, 9]]}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        load_windows(tmp_path / "bad.jsonl")


def test_sample_segments_takes_thinking_seeds_and_counts_failures():
    def answer(prompt):
        if "boom" in prompt:
            raise RuntimeError("server down")
        if "empty" in prompt:
            return "</think>only an answer"
        return f"<think>{_text(80)} {prompt}</think>final answer"

    def split_thinking(text):
        if "<think>" not in text:
            raise ValueError("no thinking")
        return text.split("<think>", 1)[1].split("</think>", 1)[0]

    engine = ScriptedEngine(answer)
    prompts = ["q1", "q2", "q2", "boom", "empty"]
    sample = asyncio.run(
        sample_segments(
            engine,
            prompts,
            params=Sampling(),
            split_thinking=split_thinking,
            concurrency=2,
            words=60,
            per_response=3,
            seed=7,
        )
    )
    assert sample.failures == {"engine_error:RuntimeError": 1, "no_thinking": 1}
    assert sample.n_responses == 3
    # q2 twice gives the same thinking: its windows are deduplicated.
    assert len(sample.windows) == 6
    assert all("final answer" not in w.text and len(w.text.split()) == 60 for w in sample.windows)
    assert sorted(p.seed for _, p in engine.calls) == [7, 8, 9, 10, 11]


def test_parse_phrases_strict_json():
    assert parse_phrases('["Okay,", "so"]') == ["Okay,", "so"]
    assert parse_phrases('```json\n["so"]\n```') == ["so"]
    assert parse_phrases("[]") == []
    for bad, reason in [
        ("Okay, so", "invalid_json"),
        ('["so"', "invalid_json"),
        ('{"a": 1}', "not_string_array"),
        ("[1, 2]", "not_string_array"),
    ]:
        with pytest.raises(AnnotationError) as e:
            parse_phrases(bad)
        assert e.value.reason == reason


def test_locate_in_order_after_previous_match():
    text = "So we add. So we stop."
    assert locate(text, ["So", "So"]) == [(0, 2), (11, 13)]
    with pytest.raises(AnnotationError) as e:
        locate(text, ["stop", "add"])
    assert e.value.reason == "out_of_order"
    with pytest.raises(AnnotationError) as e:
        locate(text, ["Well"])
    assert e.value.reason == "span_not_found"


def test_annotate_llm_keeps_good_windows_and_counts_drops():
    windows = [
        Window("Okay, let's see. The sum is 4. So it fits."),
        Window("The graph has 3 nodes."),
        Window("Hmm, wait, the loop ends."),
        Window("Well, the answer is 5."),
        Window("In this case, we add. Then, for example, x."),
        Window("boom"),
    ]
    answers = {
        windows[0].text: '["Okay, let\'s see.", "So"]',
        windows[1].text: "[]",
        windows[2].text: "Hmm, wait,",  # not JSON
        windows[3].text: '["Alright,"]',  # not in the text
        windows[4].text: '["for example,", "In this case,"]',  # out of order
    }

    def answer(prompt):
        for text, reply in answers.items():
            if text in prompt:
                return reply
        raise TimeoutError

    engine = ScriptedEngine(answer)
    result = asyncio.run(
        annotate_llm(engine, windows, params=Sampling(), render=lambda m: f"<user>{m}</user>")
    )
    assert [w.text for w in result.windows] == [windows[0].text, windows[1].text]
    assert result.windows[0].spans == ((0, 16), (31, 33))
    assert result.windows[1].spans == ()
    assert result.dropped == {
        "invalid_json": 1,
        "span_not_found": 1,
        "out_of_order": 1,
        "engine_error:TimeoutError": 1,
    }
    assert engine.calls[0][0].startswith("<user>") and "JSON array" in annotation_prompt("x")


def test_lexicon_microworld_and_general():
    student = MICROWORLD["student"]
    text = "Okay, let's see. Also So we add. But wait, Sort it. Hmm, wait, done."
    found = [text[a:b] for a, b in student.spans(text)]
    assert found == ["Okay, let's see.", "So", "But wait,", "Hmm, wait,"]
    teacher = MICROWORLD["teacher"]
    plan = "Approach: We need to sort."
    assert [plan[a:b] for a, b in teacher.spans(plan)] == ["Approach: We need to"]  # adjacent: one span
    general = Lexicon(phrases=["let's see", "so"], patterns=[r"\bI (?:think|guess)\b"], ignore_case=True)
    [w] = general.annotate([Window("Let's see, I guess so.")])
    assert [w.text[a:b] for a, b in w.spans] == ["Let's see", "I guess so"]
    with pytest.raises(ValueError):
        Lexicon()


def test_microworld_lexicon_recovers_the_generator_spans():
    from tessy.microworld.problems import generate_problems
    from tessy.microworld.traces import make_trace

    for role in ("student", "teacher"):
        rng = random.Random(0)
        for problem in generate_problems(20, seed=0, split="eval"):
            trace = make_trace(problem, role, rng)
            text = trace.thinking
            # The generator's spans may start with the whitespace before a phrase; the lexicon's never do.
            gold = [(b - len(text[a:b].lstrip()), b) for a, b in trace.style_spans]
            assert MICROWORLD[role].spans(text) == gold


def test_token_labels_and_shift_handmade():
    text = "Okay, so x = 1"
    offsets = [(0, 4), (4, 5), (5, 8), (8, 10), (10, 12), (12, 14)]  # Okay | , | " so" | " x" | " =" | " 1"
    labels = token_labels(text, offsets, [(0, 5), (6, 8)])
    assert labels == [1, 1, 1, 0, 0, 0]
    assert shift(labels) == [1, 1, 0, 0, 0, IGNORE]
    # Whitespace after a span is capability; whitespace inside one is style.
    assert token_labels("So\n\nx", [(0, 2), (2, 4), (4, 5)], [(0, 2)]) == [1, 0, 0]
    assert token_labels("let's see x", [(0, 5), (5, 6), (6, 9), (9, 11)], [(0, 9)]) == [1, 1, 1, 0]
    assert shift([]) == []


def test_encode_aligns_shifted_labels_with_real_tokens():
    tok = train_tokenizer(["Okay, let's see. We add two numbers. So the sum is small."] * 20, vocab_size=300)
    text = "We add. So the sum is 3."
    [ex] = encode(tok, [Window(text, spans=((8, 10),))])
    ids = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    styled = [j + 1 for j, lab in enumerate(ex.labels) if lab == 1]
    assert "".join(text[slice(*ids["offset_mapping"][k])] for k in styled).strip() == "So"
    assert ex.labels[-1] == IGNORE and len(ex.labels) == len(ex.input_ids)
    [short] = encode(tok, [Window(text, spans=())], max_tokens=4)
    assert short.input_ids == ids["input_ids"][-4:]
    with pytest.raises(ValueError, match="not annotated"):
        encode(tok, [Window(text)])


def test_score_handmade():
    gold = [[0, 0, 1, 1, 0, 0, 0, 1]]
    assert score(gold, gold)["style_f1"] == 1.0 and score(gold, gold)["boundary_f1"] == 1.0
    # Predicted style one token late: boundaries within ±1 still match, tokens do not.
    late = [[0, 0, 0, 1, 1, 0, 0, 0]]
    s = score(late, gold)
    assert s["accuracy"] == 5 / 8 and s["precision"] == 1 / 2 and s["recall"] == 1 / 3
    assert s["boundary_f1"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 1))  # 2 of 2 predicted, 2 of 3 gold
    assert score([[0] * 8], gold)["style_f1"] == 0.0
    assert score([[0] * 8], gold)["n_tokens"] == 8
