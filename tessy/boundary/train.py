"""Fine-tune a causal base into a boundary predictor on annotated windows."""

import json
import random
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from transformers import get_linear_schedule_with_warmup

from tessy.boundary.dataset import batches, encode
from tessy.boundary.evaluate import predict_examples, score
from tessy.boundary.labels import IGNORE
from tessy.boundary.model import load_classifier, resolve_device
from tessy.boundary.windows import Window
from tessy.hashing import config_hash

METRICS_FILE = "boundary.json"


@dataclass(frozen=True)
class TrainConfig:
    """Defaults suit small bases (the microworld's); the paper's for Qwen3-0.6B-Base: lr=1e-5."""

    lr: float = 1e-4
    epochs: int = 3
    batch_size: int = 32
    max_tokens: int = 200  # windows are left-truncated to this many predictor tokens
    val_fraction: float = 0.05
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    evals_per_epoch: int = 1  # validation passes per epoch; the best one is kept
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if min(self.epochs, self.batch_size, self.max_tokens, self.evals_per_epoch) < 1:
            raise ValueError(f"epochs, batch_size, max_tokens and evals_per_epoch must be positive: {self}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")


@dataclass
class TrainResult:
    out_dir: Path
    metrics: dict  # what boundary.json holds


def data_hash(windows: Sequence[Window]) -> str:
    """Order-independent hash of the training windows and their spans."""
    return config_hash(sorted([w.text, w.spans] for w in windows))


def split(windows: Sequence[Window], val_fraction: float, seed: int) -> tuple[list[Window], list[Window]]:
    """Seeded train/validation split; at least one window on each side when there are two or more."""
    order = list(windows)
    random.Random(seed).shuffle(order)
    n_val = min(max(1, round(len(order) * val_fraction)), len(order) - 1) if len(order) > 1 else 0
    return order[n_val:], order[:n_val]


def train(
    base_dir: str | Path,
    windows: Sequence[Window],
    out_dir: str | Path,
    config: TrainConfig = TrainConfig(),
    *,
    progress: bool = True,
) -> TrainResult:
    """Train a 2-label token classifier from `base_dir` (any causal LM dir) on annotated windows, keep
    the checkpoint with the best validation token accuracy, and save it to `out_dir` with
    `save_pretrained` (model + tokenizer + boundary.json with metrics and the training-data hash)."""
    if len(windows) < 2:
        raise ValueError(f"need at least 2 annotated windows to train and validate, got {len(windows)}")
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    model, tokenizer = load_classifier(base_dir, device)
    train_w, val_w = split(windows, config.val_fraction, config.seed)
    train_x, val_x = (
        encode(tokenizer, train_w, config.max_tokens),
        encode(tokenizer, val_w, config.max_tokens),
    )
    # A one-token window has no next token to label; a batch of only such rows would give a NaN loss.
    unlabelled = sum(all(x == IGNORE for x in e.labels) for e in train_x)
    train_x = [e for e in train_x if any(x != IGNORE for x in e.labels)]
    if not train_x:
        raise ValueError("no training window has two or more tokens")

    steps_per_epoch = -(-len(train_x) // config.batch_size)
    total = steps_per_epoch * config.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = get_linear_schedule_with_warmup(optimizer, round(total * config.warmup_ratio), total)
    eval_at = {
        round(steps_per_epoch * (k + 1) / config.evals_per_epoch) for k in range(config.evals_per_epoch)
    }
    rng = random.Random(config.seed)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")

    history: list[dict] = []
    best: dict | None = None
    best_state: dict | None = None
    columns = (
        TextColumn("[bold]predictor"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, TimeRemainingColumn(), disable=not progress) as bar:
        task = bar.add_task("train", total=total, info="")
        step = 0
        for epoch in range(config.epochs):
            for i, batch in enumerate(batches(train_x, config.batch_size, rng=rng), 1):
                model.train()
                with autocast:
                    loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                bar.update(task, advance=1, info=f"loss {loss.item():.4f}")
                if i not in eval_at:
                    continue
                with autocast:
                    metrics = score(*predict_examples(model, val_x, batch_size=config.batch_size))
                history.append({"epoch": epoch, "step": step, "loss": loss.item(), **metrics})
                bar.update(task, info=f"loss {loss.item():.4f} val acc {metrics['accuracy']:.3f}")
                if best is None or metrics["accuracy"] > best["accuracy"]:
                    best = history[-1]
                    best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    model.load_state_dict(best_state)
    info = {
        "best": best,
        "history": history,
        "train_rows": len(train_w),
        "unlabelled_train_rows": unlabelled,
        "val_rows": len(val_w),
        "data_hash": data_hash(windows),
        "base_model": str(base_dir),
        "config": asdict(config),
    }
    out = Path(out_dir)
    _save(model, tokenizer, info, out)
    return TrainResult(out, info)


def _save(model, tokenizer, info: dict, out: Path) -> None:
    """Write into a sibling temporary dir, then swap it in, so a crash never leaves half a predictor."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / METRICS_FILE).write_text(json.dumps(info, indent=2))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
