"""Engine over transformers `generate`, in-process: for machines without a vLLM environment and for
unit tests. Requests run one at a time in a worker thread; tokens stream back to the event loop,
where `until` and stop strings are checked, and a cut stops generation at the next token."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.generation.stopping_criteria import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from tessy.engines.base import Completion, FinishReason, RequestRejected, Sampling, Until, ask_until


class _QueueStreamer(BaseStreamer):
    """Hands each generated token id from the generate thread to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[int | None]) -> None:
        self._loop = loop
        self._queue = queue
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first hands over the prompt ids
            self._prompt_seen = True
            return
        for token_id in value.reshape(-1).tolist():
            self._loop.call_soon_threadsafe(self._queue.put_nowait, token_id)

    def end(self) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, None)


class _StopWhenSet(StoppingCriteria):
    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self._event.is_set(), dtype=torch.bool)


def _find_stop(text: str, stop: tuple[str, ...], start: int) -> int | None:
    """Offset of the earliest stop string that ends after `start` (the new text)."""
    hits = [i for s in stop if (i := text.find(s, max(0, start - len(s) + 1))) >= 0]
    return min(hits) if hits else None


class HFEngine:
    def __init__(
        self,
        model: str | Path | PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase | None = None,
        *,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        name: str | None = None,
    ) -> None:
        if isinstance(model, str | Path):
            self.name = name or str(model)
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
            model = AutoModelForCausalLM.from_pretrained(model, dtype=dtype)
        else:
            if tokenizer is None:
                raise ValueError("HFEngine needs a tokenizer when given a loaded model")
            self.name = name or model.config.name_or_path or type(model).__name__
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.max_len = int(getattr(model.config, "max_position_embeddings", 0)) or None
        eos = model.generation_config.eos_token_id
        self._eos = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        # Held by the generate thread: one request at a time, from any event loop.
        self._lock = threading.Lock()

    async def complete(self, prompt: str, params: Sampling, *, until: Until | None = None) -> Completion:
        prompt_ids = self.tokenizer(prompt, return_tensors="pt").input_ids.to(self.model.device)
        if self.max_len is not None:
            # Like vLLM: a prompt must leave room for one token; max_tokens is capped to what is left.
            room = self.max_len - prompt_ids.shape[1]
            if room < 1:
                raise RequestRejected(
                    f"{self.name}: prompt of {prompt_ids.shape[1]} tokens leaves no room in the model's "
                    f"{self.max_len} positions"
                )
            params = replace(params, max_tokens=min(params.max_tokens, room))
        return await self._generate(prompt_ids, params, until)

    async def _generate(self, prompt_ids: torch.Tensor, params: Sampling, until: Until | None) -> Completion:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[int | None] = asyncio.Queue()
        stop = threading.Event()
        thread = asyncio.ensure_future(asyncio.to_thread(self._run, prompt_ids, params, loop, queue, stop))
        ids: list[int] = []
        n_tokens = 0
        text = ""
        hit_eos = False
        finish: FinishReason | None = None
        try:
            while (token_id := await queue.get()) is not None:
                n_tokens += 1
                if token_id in self._eos and not params.ignore_eos:
                    hit_eos = True
                    continue
                ids.append(token_id)
                decoded = self.tokenizer.decode(ids, skip_special_tokens=params.skip_special_tokens)
                if decoded.endswith("\ufffd"):  # a multi-byte char is still incomplete
                    continue
                at = _find_stop(decoded, params.stop, len(text)) if params.stop else None
                if at is not None:
                    text, finish = decoded[:at], "stop"
                    break
                grew, text = decoded != text, decoded
                if until is not None and grew and (cut := await ask_until(until, text)) is not None:
                    text, finish = text[:cut], "cut"
                    break
        finally:
            stop.set()
            await thread
        if finish is None:
            text = self.tokenizer.decode(ids, skip_special_tokens=params.skip_special_tokens)
            finish = "length" if n_tokens >= params.max_tokens and not hit_eos else "stop"
        return Completion(text, n_tokens, finish, self.name)

    def _run(
        self,
        prompt_ids: torch.Tensor,
        params: Sampling,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[int | None],
        stop: threading.Event,
    ) -> None:
        sampling: dict[str, Any] = {"do_sample": False}
        if params.temperature > 0:
            sampling = {
                "do_sample": True,
                "temperature": params.temperature,
                "top_p": params.top_p,
                "top_k": params.top_k,
                "min_p": params.min_p or None,
            }
        pad = (
            self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else min(self._eos, default=0)
        )
        try:
            with self._lock, torch.inference_mode():
                if stop.is_set():  # the caller gave up while we waited for the model
                    return
                if params.seed is not None:
                    torch.manual_seed(params.seed)  # global RNG: safe because requests run one at a time
                self.model.generate(
                    prompt_ids,
                    attention_mask=torch.ones_like(prompt_ids),
                    max_new_tokens=params.max_tokens,
                    min_new_tokens=params.max_tokens if params.ignore_eos else None,
                    streamer=_QueueStreamer(loop, queue),
                    stopping_criteria=StoppingCriteriaList([_StopWhenSet(stop)]),
                    pad_token_id=pad,
                    **sampling,
                )
        finally:
            # Wakes the consumer even when generate() raised before ending the stream.
            loop.call_soon_threadsafe(queue.put_nowait, None)
