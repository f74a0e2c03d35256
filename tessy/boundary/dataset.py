"""Annotated windows -> token ids and shifted labels, and padded batches of them."""

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from tessy.boundary.labels import IGNORE, shift, token_labels
from tessy.boundary.windows import Window


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]  # shifted: labels[j] is the class of token j + 1, IGNORE at the end


def encode(
    tokenizer: PreTrainedTokenizerBase, windows: Sequence[Window], max_tokens: int = 200
) -> list[Example]:
    """Tokenize annotated windows (no special tokens, as at inference) and keep the last `max_tokens`
    tokens of each, the way the predictor's input is left-truncated."""
    if missing := sum(w.spans is None for w in windows):
        raise ValueError(f"{missing} of {len(windows)} windows are not annotated (spans is None)")
    if not windows:
        return []
    enc = tokenizer([w.text for w in windows], add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for w, ids, offsets in zip(windows, enc["input_ids"], enc["offset_mapping"], strict=True):
        labels = shift(token_labels(w.text, offsets, w.spans))
        out.append(Example(list(ids[-max_tokens:]), labels[-max_tokens:]))
    return out


def collate(examples: Sequence[Example]) -> dict[str, torch.Tensor]:
    """Right-padded batch; padding is masked out and carries no label."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.zeros(len(examples), width, dtype=torch.long)
    mask = torch.zeros(len(examples), width, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        mask[i, :n] = 1
        labels[i, :n] = torch.tensor(e.labels)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def batches(
    examples: Sequence[Example], batch_size: int, *, rng: random.Random | None = None
) -> Iterator[dict[str, torch.Tensor]]:
    """Batches in order, or shuffled with `rng`."""
    order = list(range(len(examples)))
    if rng is not None:
        rng.shuffle(order)
    for i in range(0, len(order), batch_size):
        yield collate([examples[j] for j in order[i : i + batch_size]])
