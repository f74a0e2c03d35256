"""Scoring a predictor's next-token classes against gold style spans."""

from collections.abc import Sequence
from pathlib import Path
from random import Random

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from tessy.boundary.dataset import Example, batches, encode
from tessy.boundary.labels import IGNORE, STYLE
from tessy.boundary.model import load_classifier, resolve_device
from tessy.boundary.windows import Window, cut_windows
from tessy.microworld.problems import generate_problems
from tessy.microworld.styles import STEPS, other_style
from tessy.microworld.traces import make_trace


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def switches(labels: Sequence[int]) -> list[tuple[int, int]]:
    """(index, new class) wherever the class changes."""
    return [(k, labels[k]) for k in range(1, len(labels)) if labels[k] != labels[k - 1]]


def _match(pred: list[tuple[int, int]], gold: list[tuple[int, int]], tolerance: int) -> int:
    """Greedy one-to-one matching of same-direction switches at most `tolerance` tokens apart."""
    used = [False] * len(gold)
    hits = 0
    for k, c in pred:
        for i, (g, gc) in enumerate(gold):
            if not used[i] and gc == c and abs(g - k) <= tolerance:
                used[i] = True
                hits += 1
                break
    return hits


def score(
    pred: Sequence[Sequence[int]], gold: Sequence[Sequence[int]], tolerance: int = 1
) -> dict[str, float]:
    """Token accuracy, style precision/recall/F1 and boundary F1 over sequences of per-token classes.
    Boundary F1 counts class switches in `pred` that match a same-direction switch in `gold` within
    `tolerance` tokens. Zero denominators score 0."""
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predicted sequences for {len(gold)} gold ones")
    tp = fp = fn = correct = n = 0
    b_tp = b_pred = b_gold = 0
    for p, g in zip(pred, gold, strict=True):
        if len(p) != len(g):
            raise ValueError(f"sequence lengths differ: {len(p)} predicted vs {len(g)} gold")
        for a, b in zip(p, g, strict=True):
            correct += a == b
            tp += a == STYLE and b == STYLE
            fp += a == STYLE and b != STYLE
            fn += a != STYLE and b == STYLE
        n += len(g)
        ps, gs = switches(p), switches(g)
        b_tp += _match(ps, gs, tolerance)
        b_pred += len(ps)
        b_gold += len(gs)
    return {
        "style_f1": _f1(tp, fp, fn),
        "boundary_f1": _f1(b_tp, b_pred - b_tp, b_gold - b_tp),
        "accuracy": correct / n if n else 0.0,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "n_tokens": n,
    }


@torch.no_grad()
def predict_examples(
    model: PreTrainedModel, examples: Sequence[Example], *, batch_size: int = 32
) -> tuple[list[list[int]], list[list[int]]]:
    """(predicted, gold) classes of every labelled position of each example."""
    model.eval()
    device = next(model.parameters()).device
    preds, golds = [], []
    for batch in batches(examples, batch_size):
        logits = model(
            input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
        ).logits
        best = logits.argmax(-1).cpu()
        for row, labels in zip(best, batch["labels"], strict=True):
            keep = labels != IGNORE
            preds.append(row[keep].tolist())
            golds.append(labels[keep].tolist())
    return preds, golds


def evaluate(
    model: str | Path | tuple[PreTrainedModel, PreTrainedTokenizerBase],
    windows: Sequence[Window],
    *,
    max_tokens: int = 200,
    batch_size: int = 32,
    device: str = "auto",
    tolerance: int = 1,
) -> dict[str, float]:
    """Score a predictor (a saved dir, or a loaded model and tokenizer) on windows whose `spans` are
    the gold style spans, e.g. a generator's ground truth rather than an annotator's guess."""
    if isinstance(model, (str, Path)):
        model = load_classifier(model, resolve_device(device))
    net, tokenizer = model
    preds, golds = predict_examples(net, encode(tokenizer, windows, max_tokens), batch_size=batch_size)
    return score(preds, golds, tolerance)


def gold_windows(
    role: str,
    n_problems: int,
    words: int,
    per_response: int,
    seed: int,
    split: str = "eval",
    mixed: bool = False,
) -> list[Window]:
    """Microworld traces in the role's style, windows labelled with the generator's style spans.
    `mixed`: each step of a trace is in either voice, as TESSY writes it, so most windows hold text of
    both models (the predictor reads such text in synthesis)."""
    rng = Random(f"{seed}/mixed") if mixed else Random(seed)
    windows = []
    for problem in generate_problems(n_problems, seed=seed, split=split):
        voices = [rng.choice((role, other_style(role))) for _ in STEPS] if mixed else None
        trace = make_trace(problem, role, rng, voices=voices)
        windows += cut_windows(
            trace.thinking, words=words, per_response=per_response, seed=seed, spans=trace.style_spans
        )
    return windows
