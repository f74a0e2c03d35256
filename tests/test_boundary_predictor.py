"""BoundaryPredictor: the cut rules, and incremental inference matching full recomputation."""

import random

import pytest
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from tessy.boundary import BoundaryPredictor, Request, find_cut, make_base, random_base
from tessy.boundary.base import train_tokenizer
from tessy.boundary.labels import CAPABILITY, STYLE

WORDS = (
    "we add the values of the array so okay wait then index loop node edge graph sum minimum maximum "
    "let me think about it hmm alright approach complexity is linear answer equals"
).split()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    rng = random.Random(0)
    return random_base(
        tmp_path_factory.mktemp("base"), [_words(rng, 60) + "." for _ in range(100)], vocab_size=300
    )


def test_cut_rules_on_handmade_logits():
    # logits[j] scores the class of the token after new token j: [capability, style].
    logits = torch.tensor([[2.0, -1.0], [1.5, 0.0], [-1.0, 3.0], [2.0, 0.0]])
    classes = logits.argmax(-1).tolist()
    ends = [3, 7, 12, 15]
    # The teacher keeps through the first token followed by style, then hands over.
    teacher = find_cut("teacher", classes, ends, 15)
    assert (teacher.keep, teacher.switch) == (12, True)
    # The student keeps through the first token followed by capability: at least one token.
    student = find_cut("student", classes, ends, 15)
    assert (student.keep, student.switch) == (3, True)
    # Nothing of the other class: keep everything, stay.
    all_style = find_cut("student", [STYLE] * 4, ends, 16)
    assert (all_style.keep, all_style.switch) == (16, False)
    all_cap = find_cut("teacher", [CAPABILITY] * 4, ends, 16)
    assert (all_cap.keep, all_cap.switch) == (16, False)
    # A prediction about the token after the last new one still cuts: the span ends here.
    last = find_cut("teacher", [CAPABILITY, CAPABILITY, CAPABILITY, STYLE], ends, 15)
    assert (last.keep, last.switch) == (15, True)
    with pytest.raises(ValueError, match="role"):
        find_cut("judge", classes, ends, 15)


def _simulate(base, *, steps: int, seed: int, max_window: int):
    """Drive an incremental and a full predictor through the same calls, as synthesis would: new text
    revealed at arbitrary char positions (BPE seams mid-word), asked about again as a stream grows (or
    after a retry shrinks it), a kept prefix or all of it appended, sometimes a long span of the other
    role in between, windows overflowing."""
    rng = random.Random(seed)
    inc = BoundaryPredictor(base, device="cpu", max_window=max_window)
    full = BoundaryPredictor(base, device="cpu", max_window=max_window, incremental=False)
    sources = {k: _words(rng, 400) for k in "abcdef"}
    contexts = {
        "a": "",
        "b": "Okay",
        "c": _words(rng, 20),
        "d": _words(rng, 900),
        "e": "x",
        "f": _words(rng, 5),
    }
    cursor = dict.fromkeys(sources, 0)
    compared = 0
    for _ in range(steps):
        requests = []
        for k in rng.sample(sorted(sources), 4):  # a different subset of samples every call
            size = rng.randint(1, 40) if rng.random() > 0.05 else 400  # now and then more than a window
            new = sources[k][cursor[k] : cursor[k] + size]
            requests.append(Request(k, contexts[k], new, rng.choice(["teacher", "student"])))
        got, want = inc.predict(requests), full.predict(requests)
        for r, g, w in zip(requests, got, want, strict=True):
            assert g.next_classes == w.next_classes
            assert g.token_ends == w.token_ends and g.token_ends[-1] == len(r.new)
            assert (g.keep, g.switch) == (w.keep, w.switch)
            cut = find_cut(r.role, g.next_classes, g.token_ends, len(r.new))
            assert (g.keep, g.switch) == (cut.keep, cut.switch)
            torch.testing.assert_close(g.logits, w.logits, atol=1e-4, rtol=1e-4)
            # Retokenizing only the window's tail gives what tokenizing the whole window would.
            window = inc._windows[r.key]
            assert window.ids == inc.tokenizer(window.text, add_special_tokens=False)["input_ids"]
            compared += len(g.next_classes)
            if rng.random() < 0.3:  # still streaming: the next call has the same context, new text again
                continue
            keep = g.keep if rng.random() < 0.5 else len(r.new)
            contexts[r.key] += r.new[:keep]
            cursor[r.key] += keep
            if rng.random() < 0.3:  # the other role writes a span this predictor never saw
                contexts[r.key] += " " + _words(rng, rng.randint(1, 20)) + "."
    return inc, full, compared


def test_incremental_matches_full_recomputation(base):
    inc, full, compared = _simulate(base, steps=14, seed=1, max_window=64)
    assert compared > 200
    assert inc.stats["reencodes"] > 0  # windows overflowed and restarted
    assert inc.stats["scores_reused"] > 0  # a grown stream's tokens were not fed again
    assert inc.stats["forwards"] > full.stats["forwards"]  # long catch-ups ran in their own forward
    assert inc.stats["tokens_fed"] < full.stats["tokens_fed"]


def test_release_and_bad_calls(base):
    predictor = BoundaryPredictor(base, device="cpu", max_window=32)
    long_context = _words(random.Random(3), 300)  # longer than the window: text before it is remembered
    [p] = predictor.predict([Request("s", long_context, " values", "teacher")])
    assert len(predictor) == 1 and p.token_ends[-1] == len(" values")
    [empty] = predictor.predict([Request("s", long_context + " values", "", "teacher")])
    assert (empty.keep, empty.switch, empty.next_classes) == (0, False, ())
    with pytest.raises(ValueError, match="no longer extends"):
        predictor.predict([Request("s", "something else entirely", " x", "teacher")])
    predictor.release("s")
    assert len(predictor) == 0
    predictor.predict([Request("s", "something else entirely", " x", "teacher")])
    with pytest.raises(ValueError, match="once per call"):
        predictor.predict([Request("t", "", "a", "student"), Request("t", "", "b", "student")])
    with pytest.raises(ValueError, match="role"):
        predictor.predict([Request("u", "", "a", "judge")])
    predictor.release("never-seen")


def test_no_cut_ranges_reach_the_cut(base):
    """The same scores; only where the cut may fall differs (synthesis passes code blocks)."""
    predictor = BoundaryPredictor(base, device="cpu")
    new = " the values so on and so forth"
    free, fenced = (
        predictor.predict([Request(key, "we add", new, "student", no_cut)])[0]
        for key, no_cut in (("a", ()), ("b", ((0, len(new) + 1),)))
    )
    assert free.next_classes == fenced.next_classes
    assert (fenced.keep, fenced.switch) == (len(new), False)


def test_refuses_a_base_without_a_trained_head(tmp_path):
    rng = random.Random(0)
    tokenizer = train_tokenizer([_words(rng, 40) for _ in range(20)], vocab_size=300)
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, head_dim=64,
    )  # fmt: skip
    Qwen3ForCausalLM(config).save_pretrained(tmp_path / "causal")
    tokenizer.save_pretrained(tmp_path / "causal")
    with pytest.raises(ValueError, match="not a token classifier"):
        BoundaryPredictor(tmp_path / "causal", device="cpu")
    # Saved as a classifier, its head is fixed: two predictors on it agree.
    base = make_base(tmp_path / "causal", tmp_path / "base")
    a, b = (BoundaryPredictor(base, device="cpu") for _ in range(2))
    request = [Request("s", "we add", " the values so", "teacher")]
    torch.testing.assert_close(a.predict(request)[0].logits, b.predict(request)[0].logits)


def test_switch_confidence_cuts_only_where_the_other_class_is_likely_enough(base):
    """At 0.5 the classes are the argmax (the reference's rule); higher, a token is a switch only
    where the predictor gives the other class more than that: the same logits, fewer or later cuts."""
    new = " the values so on and so forth then the answer equals the sum"
    argmax, sure = (BoundaryPredictor(base, device="cpu", switch_confidence=c) for c in (0.5, 0.99))
    for role, other in (("teacher", STYLE), ("student", CAPABILITY)):
        [a] = argmax.predict([Request("s", "we add", new, role)])
        [b] = sure.predict([Request("s", "we add", new, role)])
        torch.testing.assert_close(a.logits, b.logits)
        assert list(a.next_classes) == a.logits.argmax(-1).tolist()
        p_other = a.logits.softmax(-1)[:, other]
        assert [c == other for c in b.next_classes] == (p_other > 0.99).tolist()
        assert b.keep >= a.keep
        argmax.release("s")
        sure.release("s")
    with pytest.raises(ValueError, match="switch_confidence"):
        BoundaryPredictor(base, device="cpu", switch_confidence=1.0)


def test_torch_threads_narrow_while_any_block_runs_and_come_back_after_the_last():
    import threading

    import torch

    from tessy.boundary.model import torch_threads

    def in_a_new_thread() -> int:  # what a thread started now (the event loop's executor) works with
        seen = []
        thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        return seen[0]

    original = torch.get_num_threads()
    torch.set_num_threads(3)
    entered, leave = threading.Barrier(2), threading.Event()

    def part() -> None:  # a second synthesis part on a thread of its own
        with torch_threads(1):
            entered.wait()
            leave.wait()

    other = threading.Thread(target=part)
    try:
        with torch_threads(1):
            other.start()
            entered.wait()  # both blocks are in
            assert in_a_new_thread() == 1
        assert in_a_new_thread() == 1  # the first block has ended; the other still runs
        leave.set()
        other.join()
        assert in_a_new_thread() == 3
        with torch_threads(None):
            assert in_a_new_thread() == 3
    finally:
        leave.set()
        torch.set_num_threads(original)
