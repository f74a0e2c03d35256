"""Boundary predictors, the model side: a base from a causal LM, training, evaluation on gold spans."""

import json
import random

import pytest
import torch
from transformers import AutoConfig, Qwen3Config, Qwen3ForCausalLM

from tessy.boundary import TrainConfig, cut_windows, evaluate, make_base, train
from tessy.boundary.base import train_tokenizer
from tessy.boundary.lexicon import STUDENT_PHRASES
from tessy.boundary.train import METRICS_FILE, data_hash, split


def _capability(rng: random.Random) -> str:
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    return rng.choice(
        [
            f"the array has {a} values",
            f"we add {a} and {b} to get {a + b}",
            f"node {a} connects to node {b}",
            f"the loop runs from {a} to {b}",
            f"dp[{a}] = dp[{b}] + 1",
            f"the answer is at most {a * b}",
        ]
    )


def _trace(rng: random.Random, sentences: int = 30) -> tuple[str, list[tuple[int, int]]]:
    """Capability sentences with student-style phrases in front of some: text + gold style spans."""
    text, spans = "", []
    for _ in range(sentences):
        if rng.random() < 0.45:
            phrase = rng.choice(STUDENT_PHRASES)
            text += " " if text else ""
            spans.append((len(text), len(text) + len(phrase)))
            text += phrase
        sentence = _capability(rng) + "."
        text += " " + sentence if text else sentence.capitalize()
    return text, spans


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def causal_dir(tmp_path_factory):
    """A random-init 3-layer Qwen3 causal LM and its BPE tokenizer, standing in for the microworld student."""
    rng = random.Random(0)
    tokenizer = train_tokenizer([_trace(rng)[0] for _ in range(40)], vocab_size=400)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("causal")
    Qwen3ForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_make_base_trims_layers(causal_dir, tmp_path):
    base = make_base(causal_dir, tmp_path / "base", num_layers=2)
    config = AutoConfig.from_pretrained(base)
    assert config.num_hidden_layers == 2 and config.num_labels == 2
    assert config.id2label == {0: "capability", 1: "style"}
    with pytest.raises(ValueError, match="num_layers"):
        make_base(causal_dir, tmp_path / "bad", num_layers=4)


def test_split_is_seeded_and_never_empty():
    items = list(range(40))
    train_part, val = split(items, 0.05, seed=1)
    assert len(val) == 2 and sorted(train_part + val) == items
    assert split(items, 0.05, seed=1) == (train_part, val)
    assert [len(p) for p in split([1, 2], 0.05, seed=0)] == [1, 1]


def test_training_beats_chance_on_two_style_text(causal_dir, tmp_path):
    rng = random.Random(1)
    train_windows = [
        w
        for t, s in (_trace(rng) for _ in range(50))
        for w in cut_windows(t, spans=s, words=40, per_response=8)
    ]
    held_out = [
        w
        for t, s in (_trace(rng) for _ in range(10))
        for w in cut_windows(t, spans=s, words=40, per_response=8)
    ]
    base = make_base(causal_dir, tmp_path / "base", num_layers=2)
    before = evaluate(base, held_out, device="cpu")

    config = TrainConfig(lr=2e-3, epochs=4, batch_size=16, evals_per_epoch=2, device="cpu")
    result = train(base, train_windows, tmp_path / "predictor", config, progress=False)
    after = evaluate(result.out_dir, held_out, device="cpu")

    style_share = sum(b - a for w in held_out for a, b in w.spans) / sum(len(w.text) for w in held_out)
    assert 0.1 < style_share < 0.5  # so an all-capability or all-style guess scores poorly
    assert after["style_f1"] > 0.7 and after["style_f1"] > before["style_f1"] + 0.3
    assert after["boundary_f1"] > 0.6 and after["accuracy"] > 0.9
    assert after["n_tokens"] == before["n_tokens"] > 1000

    saved = json.loads((result.out_dir / METRICS_FILE).read_text())
    assert saved["data_hash"] == data_hash(train_windows) == data_hash(train_windows[::-1])
    assert saved["best"]["accuracy"] == max(h["accuracy"] for h in saved["history"])
    assert len(saved["history"]) == 8 and saved["train_rows"] + saved["val_rows"] == len(train_windows)
    assert not (tmp_path / "predictor.tmp").exists()


def test_training_needs_annotated_windows(causal_dir, tmp_path):
    windows = cut_windows(_trace(random.Random(2))[0], words=20, per_response=4)
    with pytest.raises(ValueError, match="not annotated"):
        train(causal_dir, windows, tmp_path / "p", TrainConfig(device="cpu"), progress=False)
    with pytest.raises(ValueError, match="at least 2"):
        train(causal_dir, windows[:1], tmp_path / "p", TrainConfig(device="cpu"), progress=False)
