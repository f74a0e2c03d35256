"""The Engine protocol and the records every backend speaks: sampling parameters in, a completion out."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

FinishReason = Literal["stop", "length", "cut"]

# Fed the text generated so far; returns (or awaits to) a char offset to stop at, or None to go on.
# An `until` with a `wake` attribute (an asyncio.Event) is fed the same text again whenever it sets
# that event: a decision it makes in the background between two streamed events stops the stream
# then, not one event later (see `wake_of`). One with a `restart` method is told when the text starts
# over (see `restart`).
Until = Callable[[str], int | None | Awaitable[int | None]]


def wake_of(until: Until | None) -> asyncio.Event | None:
    """The event `until` sets when it may answer differently on the text it was last fed, if any."""
    return getattr(until, "wake", None)


def restart(until: Until | None) -> None:
    """Tell `until` that the text it is fed starts over (a request retried on another endpoint), if it
    keeps state about the text it was fed before: an offset into that text means nothing in the new one."""
    if (hook := getattr(until, "restart", None)) is not None:
        hook()


@dataclass(frozen=True)
class Sampling:
    """Sampling for one request. Defaults follow the TESSY reference code (every span uses these)."""

    temperature: float = 0.7
    top_p: float = 0.8
    top_k: int = 20
    min_p: float = 0.0
    max_tokens: int = 1024
    seed: int | None = None
    stop: tuple[str, ...] = ()
    # Generate exactly max_tokens (benchmarks); vLLM's `ignore_eos`.
    ignore_eos: bool = False
    # vLLM's default: special tokens are dropped from the returned text.
    skip_special_tokens: bool = True

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class Completion:
    text: str
    # Tokens the engine generated for this request, including any after a cut.
    n_tokens: int
    finish_reason: FinishReason
    # Which server (URL) or in-process model produced it.
    endpoint: str


class Engine(Protocol):
    async def complete(self, prompt: str, params: Sampling, *, until: Until | None = None) -> Completion:
        """Continue `prompt`. A request retried on another endpoint feeds `until` again from the start,
        after `restart(until)`."""
        ...


class EngineError(RuntimeError):
    """A request could not be completed."""


class RequestRejected(EngineError):
    """The server refused this request itself (e.g. prompt longer than the context); retrying won't help."""


class EndpointsDown(EngineError):
    """Every endpoint of an engine is unreachable or failing."""


async def ask_until(until: Until, text: str) -> int | None:
    """Run an `until` callback (plain or async) on `text` and validate the cut it returns."""
    cut = until(text)
    if inspect.isawaitable(cut):
        cut = await cut
    if cut is not None and (not isinstance(cut, int) or isinstance(cut, bool) or not 0 <= cut <= len(text)):
        raise ValueError(f"until returned {cut!r}; expected None or a char offset in [0, {len(text)}]")
    return cut
