"""Loading a boundary predictor (a 2-label token classifier on a causal base) onto a device."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from tessy.boundary.labels import ID2LABEL, LABEL2ID


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


_narrowing = threading.Lock()
_narrowed = {"blocks": 0, "before": 0}  # blocks inside torch_threads now; torch's threads before them


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `n` for the block (None: left alone), and as they were once the
    last of the blocks running at once has ended (synthesis parts may run on threads of one process).
    torch keeps the number for the process and hands it to each thread at its first parallel work:
    the block's own thread and the threads it starts (the event loop's, where predictors run) use
    `n`; a thread that already works keeps its own."""
    if n is None:
        yield
        return
    with _narrowing:
        if not _narrowed["blocks"]:
            _narrowed["before"] = torch.get_num_threads()
        _narrowed["blocks"] += 1
        torch.set_num_threads(n)
    try:
        yield
    finally:
        with _narrowing:
            _narrowed["blocks"] -= 1
            if not _narrowed["blocks"]:
                torch.set_num_threads(_narrowed["before"])


def inference_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def load_classifier(
    model_dir: str | Path,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    *,
    require_head: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A 2-label token classifier from `model_dir`: a trained predictor, or a causal LM whose new
    classification head starts random (refused with `require_head`)."""
    architectures = AutoConfig.from_pretrained(model_dir).architectures or []
    if require_head and not any(a.endswith("ForTokenClassification") for a in architectures):
        raise ValueError(
            f"{model_dir} holds {architectures or 'no architecture'}, not a token classifier: "
            "train a predictor from it (or save it with make_base) first"
        )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not tokenizer.is_fast:
        raise ValueError(f"{model_dir}: the predictor needs a fast tokenizer (char offsets)")
    model = AutoModelForTokenClassification.from_pretrained(
        model_dir, num_labels=len(ID2LABEL), id2label=ID2LABEL, label2id=LABEL2ID, dtype=dtype
    )
    return model.to(device), tokenizer
