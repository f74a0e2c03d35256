"""Generation engines: one protocol, an HTTP backend for vLLM-style servers, an in-process transformers
backend, and the launcher for local vLLM servers. Backends import lazily (torch is heavy)."""

from tessy.engines.base import (
    Completion,
    EndpointsDown,
    Engine,
    EngineError,
    FinishReason,
    RequestRejected,
    Sampling,
    Until,
)

__all__ = [
    "Completion",
    "EndpointsDown",
    "Engine",
    "EngineError",
    "FinishReason",
    "RequestRejected",
    "Sampling",
    "Until",
]
