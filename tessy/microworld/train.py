"""Supervised training of a microworld causal LM on the CPU: fixed data order, completion-only loss
averaged per conversation."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from random import Random

import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from tessy.microworld.corpus import Conversation

IGNORE = -100


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    @property
    def n_tokens(self) -> int:
        return int(self.attention_mask.sum())


@dataclass(frozen=True)
class TrainStats:
    steps: int
    tokens: int
    seconds: float
    first_loss: float
    final_loss: float  # mean over the last tenth of the steps

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / max(self.seconds, 1e-9)


def encode(conv: Conversation, tok: PreTrainedTokenizerFast) -> tuple[list[int], list[int]]:
    """Token ids of a conversation and its labels, with the prompt and the completion's untrained
    ranges masked out of the loss (a token is masked where it starts)."""
    enc = tok(conv.text, add_special_tokens=False, return_offsets_mapping=True)
    cut = len(conv.prompt)
    pairs = zip(enc["input_ids"], enc["offset_mapping"], strict=True)
    labels = [
        i if start >= cut and not any(a <= start < b for a, b in conv.untrained) else IGNORE
        for i, (start, _) in pairs
    ]
    return enc["input_ids"], labels


def make_batches(
    encoded: list[tuple[list[int], list[int]]], batch_size: int, pad_id: int, rng: Random
) -> list[Batch]:
    """Batches of similar lengths (little padding), in a seeded order."""
    order = list(range(len(encoded)))
    rng.shuffle(order)
    window = batch_size * 8  # sort by length inside windows so batches stay mixed across the data
    groups = []
    for w in range(0, len(order), window):
        chunk = sorted(order[w : w + window], key=lambda i: len(encoded[i][0]))
        groups += [chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size)]
    rng.shuffle(groups)
    batches = []
    for group in groups:
        width = max(len(encoded[i][0]) for i in group)
        ids = torch.full((len(group), width), pad_id)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        labels = torch.full((len(group), width), IGNORE)
        for row, i in enumerate(group):
            tokens, target = encoded[i]
            ids[row, : len(tokens)] = torch.tensor(tokens)
            mask[row, : len(tokens)] = 1
            labels[row, : len(tokens)] = torch.tensor(target)
        batches.append(Batch(ids, mask, labels))
    return batches


def _lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warmup, then cosine decay to a tenth."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.45 * (1 + math.cos(math.pi * progress))


def completion_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token loss averaged over each conversation's completion, then over conversations: a
    short completion (the answer after a given thinking, a judge's verdict) weighs as much as a whole
    trace, instead of a few tokens among thousands."""
    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    per_token = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE, reduction="none")
    mask = labels != IGNORE
    return ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()


def train(model: PreTrainedModel, batches: list[Batch], lr: float, warmup: int, desc: str) -> TrainStats:
    """One pass over `batches` with AdamW; shows a progress bar with loss and tokens/s."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, len(batches), warmup))
    losses, tokens, start = [], 0, time.perf_counter()
    bar = tqdm(batches, desc=desc, unit="step", mininterval=1.0)
    for batch in bar:
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        loss = completion_loss(logits, batch.labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        tokens += batch.n_tokens
        bar.set_postfix(loss=f"{losses[-1]:.3f}", tok_s=f"{tokens / (time.perf_counter() - start):.0f}")
    bar.close()
    model.eval()
    tail = losses[-max(1, len(losses) // 10) :]
    return TrainStats(len(losses), tokens, time.perf_counter() - start, losses[0], sum(tail) / len(tail))
