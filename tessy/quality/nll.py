"""How natural a thinking text is to the student: mean per-token negative log-likelihood under the
student model, given its own Qwen3 prompt. Only thinking tokens are scored. Two scorers: the served
student (vLLM's prompt log-probs, one forward pass per trace on the model's GPUs) and transformers
in-process (the fallback when no server runs)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from tessy.progress import Steps
from tessy.quality.traces import ok_traces, require_columns, thinking_of
from tessy.templates import QWEN3

if TYPE_CHECKING:
    from tessy.engines.openai import OpenAIEngine


def _fit(prompt: list[int], thinking: list[int], max_length: int) -> tuple[list[int], int]:
    """Prompt + thinking ids within max_length: the thinking keeps its start, the prompt its end (at
    least half the window when it is long). Returns (ids, number of prompt ids)."""
    thinking = thinking[: max_length - min(len(prompt), max_length // 2)]
    prompt = prompt[-(max_length - len(thinking)) :]
    return prompt + thinking, len(prompt)


def _batches(lengths: list[int], max_batch_tokens: int) -> list[list[int]]:
    """Indices grouped longest first so that each padded batch holds at most max_batch_tokens."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= max_batch_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


@torch.inference_mode()
def _batch_nll(
    model: PreTrainedModel, ids: list[list[int]], n_prompt: list[int], pad_id: int, chunk: int
) -> list[float]:
    width = max(map(len, ids))
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    scored = torch.zeros((len(ids), width), dtype=torch.bool)  # positions whose *next* token is scored
    for row, (seq, n_p) in enumerate(zip(ids, n_prompt, strict=True)):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
        scored[row, n_p - 1 : len(seq) - 1] = True
    hidden = model.get_decoder()(input_ids=input_ids, attention_mask=mask).last_hidden_state
    targets = input_ids.roll(-1, dims=1)[scored]
    rows = scored.nonzero()[:, 0]
    # The LM head runs only on scored positions, in chunks: full logits over a 150k vocabulary would
    # not fit in memory for long traces.
    states, head = hidden[scored], model.get_output_embeddings()
    losses = torch.cat(
        [
            F.cross_entropy(head(states[i : i + chunk]).float(), targets[i : i + chunk], reduction="none")
            for i in range(0, len(states), chunk)
        ]
    )
    total = torch.zeros(len(ids)).index_add_(0, rows, losses)
    count = torch.zeros(len(ids)).index_add_(0, rows, torch.ones_like(losses))
    return (total / count).tolist()


def _inputs(
    frame: pl.DataFrame, tokenizer: Any, max_length: int
) -> tuple[list[str], list[list[int]], list[int]]:
    """Per ok trace with a non-empty thinking: its id, prompt + thinking token ids within
    `max_length`, and how many of them are the prompt's."""
    require_columns(frame, ["trace_id", "question", "text"], "student NLL")
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}")
    trace_ids, ids, n_prompt = [], [], []
    for tid, question, text in ok_traces(frame).select("trace_id", "question", "text").iter_rows():
        thinking = thinking_of(text)
        if not thinking:
            continue
        prompt = tokenizer(QWEN3.thinking_prompt(question))["input_ids"]
        seq, n_p = _fit(prompt, tokenizer(thinking, add_special_tokens=False)["input_ids"], max_length)
        trace_ids.append(tid)
        ids.append(seq)
        n_prompt.append(n_p)
    return trace_ids, ids, n_prompt


def _long(trace_ids: list[str], values: list[float]) -> pl.DataFrame:
    return pl.DataFrame(
        {"subject_id": trace_ids, "metric": ["student_nll"] * len(values), "value": values},
        schema={"subject_id": pl.String, "metric": pl.String, "value": pl.Float64},
    )


def student_nll(
    frame: pl.DataFrame,
    model_dir: str | Path,
    *,
    max_length: int = 4096,
    max_batch_tokens: int = 16384,
    chunk: int = 1024,
    steps: Steps | None = None,
) -> pl.DataFrame:
    """Long frame (subject_id=trace_id, metric="student_nll", value) for every ok trace with a
    non-empty thinking, scored on the CPU by the causal LM in `model_dir` (transformers)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    trace_ids, ids, n_prompt = _inputs(frame, tokenizer, max_length)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    values = [0.0] * len(ids)
    steps = steps or Steps("student NLL")
    steps.begin("student NLL, traces", len(ids))
    for batch in _batches([len(s) for s in ids], max_batch_tokens):
        nll = _batch_nll(model, [ids[i] for i in batch], [n_prompt[i] for i in batch], pad_id, chunk)
        for i, v in zip(batch, nll, strict=True):
            values[i] = v
        steps.advance(len(batch))
    return _long(trace_ids, values)


def served_student_nll(
    frame: pl.DataFrame,
    tokenizer: Any,
    engine: OpenAIEngine,
    *,
    max_length: int,
    concurrency: int = 16,
    steps: Steps | None = None,
) -> pl.DataFrame:
    """The same frame as `student_nll`, scored by the student's servers behind `engine` (closed after).
    `max_length` must leave the server's context one token for the completion it has to generate."""
    trace_ids, ids, n_prompt = _inputs(frame, tokenizer, max_length)
    steps = steps or Steps("student NLL")
    steps.begin("student NLL on the student's servers, traces", len(ids))

    async def score_all() -> list[float]:
        slots = asyncio.Semaphore(concurrency)

        async def score(seq: list[int], n_p: int) -> float:
            async with slots:
                logprobs = await engine.prompt_logprobs(seq)
            steps.advance(1)
            thinking = logprobs[n_p - 1 :]  # logprobs[j] is that of seq[j + 1]
            return -sum(thinking) / len(thinking)

        async with engine:
            return await asyncio.gather(*(score(s, n) for s, n in zip(ids, n_prompt, strict=True)))

    return _long(trace_ids, asyncio.run(score_all()))
