"""Fine-tune the student on traces with TRL's SFTTrainer: prompt-completion rows in the student's own
chat format, so the loss is on the assistant turn only (the thinking and the answer), never on the
question. Full-parameter or LoRA (merged into the weights, so vLLM serves the result as it is)."""

from __future__ import annotations

import gc
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tessy.errors import TessyError
from tessy.templates import Family


@dataclass(frozen=True)
class SFTSettings:
    mode: Literal["full", "lora"] = "full"
    epochs: int = 2
    lr: float = 1e-4
    batch_size: int = 16
    gradient_accumulation: int = 1
    gradient_checkpointing: bool = False
    max_length: int = 2048
    lora_r: int = 16
    lora_alpha: int = 32
    device: str = "auto"


@dataclass(frozen=True)
class SFTResult:
    path: Path
    n_rows: int
    steps: int
    first_loss: float
    final_loss: float
    seconds: float


class DivergedError(TessyError, RuntimeError):
    """The fine-tune's loss went NaN or infinite: nothing usable was written."""


def sft_rows(family: Family, pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    """Prompt-completion rows from (question, response) pairs: the prompt is the student's thinking
    prompt, which opens the thinking, so the completion is the response without that opener."""
    rows = []
    for question, response in pairs:
        body = response.removeprefix(family.opener.strip()).lstrip("\n")
        rows.append({"prompt": family.thinking_prompt(question), "completion": body})
    return rows


def finetune(
    base: str | Path, rows: list[dict[str, str]], out: Path, settings: SFTSettings, seed: int
) -> SFTResult:
    """Train a copy of `base` on `rows` and save it (weights, tokenizer, chat template) to `out`.
    `out` is written through a temporary folder, so a failed or diverged run leaves nothing there."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    if not rows:
        raise ValueError("nothing to fine-tune on: no rows")
    base = Path(base)
    if not (base / "config.json").is_file():
        raise FileNotFoundError(f"base model dir {base} not found (or has no config.json)")
    start = time.monotonic()
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft_config = None
    if settings.mode == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=settings.lora_r,
            lora_alpha=settings.lora_alpha,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
    args = SFTConfig(
        output_dir=str(tmp / "trainer"),
        num_train_epochs=settings.epochs,
        learning_rate=settings.lr,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation,
        gradient_checkpointing=settings.gradient_checkpointing,
        max_length=settings.max_length,
        completion_only_loss=True,
        seed=seed,
        data_seed=seed,
        logging_steps=1,
        logging_nan_inf_filter=False,  # a NaN loss must show, not be averaged away
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=settings.device == "cpu" or not torch.cuda.is_available(),
        lr_scheduler_type="cosine",
        warmup_steps=0,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    finite = all(torch.isfinite(p).all() for p in trainer.model.parameters())
    if not losses or not finite or not all(math.isfinite(x) for x in losses):
        shutil.rmtree(tmp, ignore_errors=True)
        raise DivergedError(
            f"fine-tune diverged (losses {losses[:1]}...{losses[-1:]}, weights finite: {finite}); lower "
            f"evaluate.finetune.lr (now {settings.lr:g})"
        )
    trained = trainer.model.merge_and_unload() if settings.mode == "lora" else trainer.model
    trained.config.use_cache = True  # training turned it off; the served model's config equals the base's
    trained.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(tmp / "trainer", ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    result = SFTResult(
        out, len(rows), trainer.state.global_step, losses[0], losses[-1], time.monotonic() - start
    )
    # The trainer holds reference cycles; free its GPU memory now, for the next fine-tune or the
    # evaluation server that starts on the same GPU.
    del trainer, trained, model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result
