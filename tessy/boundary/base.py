"""Predictor bases: a token-classification copy of a causal LM (e.g. the microworld student), or a
random-init Qwen3 with its own small BPE tokenizer for tests and benchmarks when none is at hand."""

from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForTokenClassification

from tessy.boundary.labels import ID2LABEL, LABEL2ID
from tessy.boundary.model import load_classifier


def make_base(causal_dir: str | Path, out_dir: str | Path, *, num_layers: int | None = None) -> Path:
    """Save `causal_dir` as a 2-label token classifier (fresh head), keeping only its first
    `num_layers` decoder layers when given: a smaller, faster predictor that keeps the LM's features."""
    model, tokenizer = load_classifier(causal_dir, torch.device("cpu"))
    if num_layers is not None:
        layers = model.base_model.layers
        if not 1 <= num_layers <= len(layers):
            raise ValueError(f"num_layers must be in 1..{len(layers)}, got {num_layers}")
        model.base_model.layers = layers[:num_layers]
        model.config.num_hidden_layers = num_layers
        if getattr(model.config, "layer_types", None):
            model.config.layer_types = model.config.layer_types[:num_layers]
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE (as Qwen's) trained on `corpus`; offsets stay untrimmed, as the predictor needs."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def random_base(
    out_dir: str | Path,
    corpus: Iterable[str],
    *,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 2,
    num_kv_heads: int = 1,
    head_dim: int = 64,
    intermediate_size: int = 128,
    seed: int = 0,
) -> Path:
    """A random-init Qwen3 token classifier plus a BPE tokenizer trained on `corpus`, saved to `out_dir`."""
    tokenizer = train_tokenizer(corpus, vocab_size)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=head_dim,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=len(ID2LABEL),
        id2label=ID2LABEL,
        label2id=LABEL2ID,
    )
    torch.manual_seed(seed)
    out = Path(out_dir)
    Qwen3ForTokenClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
