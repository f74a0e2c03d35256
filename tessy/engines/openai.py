"""Engine over OpenAI-compatible HTTP servers (vLLM, SGLang, ...): streaming /v1/completions, several
replicas per model with least-outstanding-requests routing, retries, and dead-endpoint take-out."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from tessy.engines.base import (
    Completion,
    EndpointsDown,
    EngineError,
    FinishReason,
    RequestRejected,
    Sampling,
    Until,
    ask_until,
    restart,
    wake_of,
)

T = TypeVar("T")


class _EndpointFailed(Exception):
    """The endpoint (not the request) failed: take it out for a while and retry elsewhere."""


@dataclass(frozen=True)
class EndpointStatus:
    url: str
    up: bool
    outstanding: int
    last_error: str


@dataclass
class _Endpoint:
    url: str
    outstanding: int = 0
    failures: int = 0
    retry_at: float = 0.0
    last_error: str = ""
    model: str | None = None

    def usable(self, now: float) -> bool:
        return self.failures == 0 or now >= self.retry_at


def _base_url(url: str) -> str:
    url = url.rstrip("/")
    return url.removesuffix("/v1")


class OpenAIEngine:
    """One model served by one or more OpenAI-compatible endpoints (data-parallel replicas).

    A failing endpoint (connection refused or reset, timeout, 5xx) is taken out for `cooloff` seconds,
    doubling with each further failure up to `max_cooloff`; after that the next request routed to it
    re-probes it. A failed request is retried on the least busy usable endpoint, up to `max_attempts`
    failed tries, waiting for a cool-off to end when no endpoint is usable. With `max_outstanding`,
    an endpoint holds at most that many requests in flight; the others wait for a free slot.

    Requests carry vLLM's extensions `return_token_ids` and `stream_interval`; for a server without
    them pass `return_token_ids=False, stream_interval=1`.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        model: str | None = None,
        api_key: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 600.0,
        max_attempts: int = 5,
        cooloff: float = 2.0,
        max_cooloff: float = 60.0,
        max_connections: int = 1024,
        max_outstanding: int | None = None,
        return_token_ids: bool = True,
        stream_interval: int = 4,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("OpenAIEngine needs at least one endpoint URL")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self._endpoints = [_Endpoint(_base_url(u)) for u in endpoints]
        self.model = model
        self.max_attempts = max_attempts
        self.cooloff = cooloff
        self.max_cooloff = max_cooloff
        # Requests in flight per endpoint at most (None: no cap); the rest wait for a free slot.
        if max_outstanding is not None and max_outstanding < 1:
            raise ValueError(f"max_outstanding must be >= 1, got {max_outstanding}")
        self.max_outstanding = max_outstanding if max_outstanding is not None else float("inf")
        self._freed = asyncio.Event()
        # vLLM extension: exact token counts even when we cut the stream before its usage chunk.
        self.return_token_ids = return_token_ids
        # vLLM extension: tokens per streamed event. Fewer events cost the server and this client less
        # per token; `until` then sees the text in steps of this many tokens.
        self.stream_interval = stream_interval
        self._turn = 0
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self._client = httpx.AsyncClient(
            transport=transport,
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout, pool=None),
            # Every in-flight stream holds a connection; hundreds run at once during synthesis.
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    @property
    def endpoints(self) -> list[str]:
        return [e.url for e in self._endpoints]

    def status(self) -> list[EndpointStatus]:
        """Per endpoint: whether it is in rotation, requests in flight, and its last error."""
        return [EndpointStatus(e.url, e.failures == 0, e.outstanding, e.last_error) for e in self._endpoints]

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> OpenAIEngine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def complete(self, prompt: str, params: Sampling, *, until: Until | None = None) -> Completion:
        return await self._routed(lambda endpoint: self._stream(endpoint, prompt, params, until))

    async def prompt_logprobs(self, ids: list[int]) -> list[float]:
        """The log-probability of each token of `ids` after the ones before it (the first has none, so
        the list is one shorter than `ids`): vLLM's `prompt_logprobs`, one forward pass on the server."""
        return await self._routed(lambda endpoint: self._score(endpoint, ids))

    async def _routed(self, request: Callable[[_Endpoint], Awaitable[T]]) -> T:
        """Run `request` on the least busy usable endpoint with room, failing over to the others."""
        failures = 0
        while True:
            endpoint = self._pick()
            if endpoint is None:
                await self._wait_for_endpoint()
                continue
            endpoint.outstanding += 1
            try:
                result = await request(endpoint)
            except _EndpointFailed as e:
                self._mark_down(endpoint, str(e))
                failures += 1
                if failures >= self.max_attempts:
                    raise self._give_up(failures) from e
                continue
            finally:
                endpoint.outstanding -= 1
                self._freed.set()
            endpoint.failures = 0
            return result

    async def _wait_for_endpoint(self) -> None:
        """Until a cool-off ends or a request finishes somewhere (which may free a capped endpoint)."""
        cooling = [e.retry_at for e in self._endpoints if e.failures and e.retry_at > time.monotonic()]
        self._freed.clear()
        timeout = max(0.0, min(cooling) - time.monotonic()) if cooling else None
        try:
            await asyncio.wait_for(self._freed.wait(), timeout)
        except TimeoutError:
            pass

    def _pick(self) -> _Endpoint | None:
        now = time.monotonic()
        n = len(self._endpoints)
        # Rotate the scan start so ties spread over replicas.
        self._turn = (self._turn + 1) % n
        order = self._endpoints[self._turn :] + self._endpoints[: self._turn]
        usable = [e for e in order if e.usable(now) and e.outstanding < self.max_outstanding]
        return min(usable, key=lambda e: e.outstanding) if usable else None

    def _mark_down(self, endpoint: _Endpoint, error: str) -> None:
        endpoint.failures += 1
        endpoint.last_error = error
        delay = min(self.max_cooloff, self.cooloff * 2 ** (endpoint.failures - 1))
        endpoint.retry_at = time.monotonic() + delay

    def _give_up(self, failures: int) -> EngineError:
        detail = "; ".join(f"{e.url} ({e.last_error or 'ok'})" for e in self._endpoints)
        if all(e.failures > 0 for e in self._endpoints):
            return EndpointsDown(f"all {len(self._endpoints)} endpoint(s) are down: {detail}")
        return EngineError(f"request failed {failures} times; endpoints: {detail}")

    async def _model(self, endpoint: _Endpoint) -> str:
        if self.model is not None:
            return self.model
        if endpoint.model is None:
            data = await self._get_json(endpoint, "/v1/models")
            ids = [m.get("id") for m in data.get("data", [])]
            if len(ids) != 1:
                raise RequestRejected(f"{endpoint.url} serves models {ids}; pass model= to pick one")
            endpoint.model = ids[0]
        return endpoint.model

    async def _get_json(self, endpoint: _Endpoint, path: str) -> dict[str, Any]:
        try:
            response = await self._client.get(endpoint.url + path)
        except httpx.TransportError as e:
            raise _EndpointFailed(_describe(e)) from e
        if response.status_code >= 400:
            raise _EndpointFailed(f"GET {path}: HTTP {response.status_code}: {response.text[:200]}")
        return response.json()

    def _body(self, model: str, prompt: str, params: Sampling) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "prompt": prompt,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "top_k": params.top_k,
            "min_p": params.min_p,
            "skip_special_tokens": params.skip_special_tokens,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if params.ignore_eos:
            body["ignore_eos"] = True
        if self.return_token_ids:
            body["return_token_ids"] = True
        if self.stream_interval > 1:
            body["stream_interval"] = self.stream_interval
        return body

    async def _stream(
        self, endpoint: _Endpoint, prompt: str, params: Sampling, until: Until | None
    ) -> Completion:
        body = self._body(await self._model(endpoint), prompt, params)
        restart(until)  # each try feeds it from the start
        got = _Received()
        try:
            async with self._client.stream("POST", endpoint.url + "/v1/completions", json=body) as response:
                if response.status_code >= 400:
                    await _raise_for_status(response)
                async with aclosing(_lines_and_wakes(response.aiter_lines(), wake_of(until))) as lines:
                    async for line in lines:
                        if line is not None:  # None: `until` woke up, to be fed the text it has again
                            if not line.startswith("data:"):
                                continue
                            payload = line[5:].strip()
                            if payload == "[DONE]":
                                break
                            if not got.add(payload):
                                continue
                        if (
                            until is not None
                            and got.text
                            and (cut := await ask_until(until, got.text)) is not None
                        ):
                            # Leaving the `async with` closes the connection, which aborts the request in
                            # vLLM: no tokens are generated past this point.
                            return Completion(got.text[:cut], got.ids or got.events, "cut", endpoint.url)
        except httpx.TransportError as e:
            raise _EndpointFailed(_describe(e)) from e
        if got.finish is None:
            raise _EndpointFailed("stream ended without a finish reason")
        return Completion(got.text, got.usage or got.ids or got.events, got.finish, endpoint.url)

    async def _score(self, endpoint: _Endpoint, ids: list[int]) -> list[float]:
        body = {
            "model": await self._model(endpoint),
            "prompt": ids,
            "max_tokens": 1,  # vLLM refuses 0; one token is the least it generates
            "temperature": 0.0,
            "prompt_logprobs": 0,  # only the prompt's own token at each position
        }
        try:
            response = await self._client.post(endpoint.url + "/v1/completions", json=body)
        except httpx.TransportError as e:
            raise _EndpointFailed(_describe(e)) from e
        if response.status_code >= 400:
            await _raise_for_status(response)
        scored = response.json()["choices"][0].get("prompt_logprobs")
        if not scored or len(scored) != len(ids):
            raise RequestRejected(f"{endpoint.url} returned no prompt_logprobs for {len(ids)} tokens")
        return [position[str(token)]["logprob"] for token, position in zip(ids[1:], scored[1:], strict=True)]


async def _raise_for_status(response: httpx.Response) -> None:
    detail = (await response.aread()).decode("utf-8", "replace")[:500]
    message = f"{response.request.url}: HTTP {response.status_code}: {detail}"
    if response.status_code >= 500 or response.status_code == 429:
        raise _EndpointFailed(message)
    raise RequestRejected(message)


def _describe(error: httpx.TransportError) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


@dataclass
class _Received:
    """What a completion stream has brought so far."""

    text: str = ""
    events: int = 0
    ids: int = 0  # token ids (vLLM's `return_token_ids`)
    usage: int | None = None  # completion tokens, from the usage event
    finish: FinishReason | None = None

    def add(self, payload: str) -> str:
        """Take in one event's JSON; the text it adds."""
        try:
            event = json.loads(payload)
        except json.JSONDecodeError as e:
            raise _EndpointFailed(f"malformed stream event: {payload[:200]!r}") from e
        if "error" in event:
            raise _EndpointFailed(f"error in stream: {str(event['error'])[:300]}")
        if event.get("usage"):
            self.usage = event["usage"].get("completion_tokens")
        delta = ""
        for choice in event.get("choices", []):
            self.events += 1
            self.ids += len(choice.get("token_ids") or [])
            delta += choice.get("text") or ""
            if reason := choice.get("finish_reason"):
                if reason not in ("stop", "length"):  # e.g. "abort" when the server stops
                    raise _EndpointFailed(f"server ended the request with {reason!r}")
                self.finish = reason
        self.text += delta
        return delta


_END = object()


async def _lines_and_wakes(
    lines: AsyncIterator[str], wake: asyncio.Event | None
) -> AsyncIterator[str | None]:
    """The stream's lines, and a None whenever `wake` is set between them (it is cleared then)."""
    if wake is None:
        async for line in lines:
            yield line
        return
    pending = asyncio.ensure_future(anext(lines, _END))
    try:
        while True:
            woken = asyncio.ensure_future(wake.wait())
            try:
                await asyncio.wait((pending, woken), return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()
            if wake.is_set():
                wake.clear()
                yield None
            if pending.done():
                line = pending.result()
                if line is _END:
                    return
                yield line
                pending = asyncio.ensure_future(anext(lines, _END))
    finally:
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
