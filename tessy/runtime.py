"""From a pipeline config to running models: the local vLLM servers a config asks for, each role's
Engine, prompt family and tokenizer, and the Synthesizer that takes turns between them. Flows start
servers once and hand endpoint URLs (plain strings) to their tasks, which build engines locally."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from tessy.boundary.predictor import BoundaryPredictor
from tessy.config import ModelConfig, PipelineConfig
from tessy.engines.base import Engine
from tessy.engines.openai import OpenAIEngine
from tessy.engines.servers import ServerSpec, serve
from tessy.synthesis.batching import BatchedBoundary
from tessy.synthesis.machine import Settings, Synthesizer, Writer
from tessy.templates import Family, get_family

ROLES = ("student", "teacher")
Endpoints = dict[str, list[str]]  # role -> base URLs of its OpenAI-compatible servers
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # org/name


def server_specs(cfg: PipelineConfig, roles: tuple[str, ...] = ROLES) -> dict[str, ServerSpec]:
    """role -> ServerSpec for the roles whose servers tessy starts itself (`engine: vllm`)."""
    return {
        role: ServerSpec.from_model_config(cfg.model(role))
        for role in roles
        if cfg.model(role).engine == "vllm"
    }


def role_endpoints(cfg: PipelineConfig, roles: tuple[str, ...], served: Endpoints) -> Endpoints:
    """Endpoint URLs per role: the servers tessy started (`served`: served name -> URLs), configured
    ones for `engine: openai`, none for `engine: hf` (in-process)."""
    specs = server_specs(cfg, roles)
    return {
        role: served[specs[role].served_name] if role in specs else list(cfg.model(role).endpoints)
        for role in roles
    }


@contextmanager
def model_endpoints(
    cfg: PipelineConfig, roles: tuple[str, ...] = ROLES, running: Endpoints | None = None
) -> Iterator[Endpoints]:
    """Endpoint URLs per role for the block: `running` ones when a caller already started the servers,
    otherwise local vLLM servers started (and stopped after) for `engine: vllm` roles."""
    if running is not None:
        yield running
        return
    with serve(list(server_specs(cfg, roles).values()), log_dir=server_log_dir(cfg)) as served:
        yield role_endpoints(cfg, roles, served)


def server_log_dir(cfg: PipelineConfig) -> Path:
    return cfg.workdir / "logs"


@dataclass
class Model:
    """One role's model as the library uses it."""

    role: str
    config: ModelConfig
    endpoints: list[str]

    @cached_property
    def tokenizer(self) -> Any:
        from transformers import AutoTokenizer  # slow to import; only what needs a tokenizer pays

        path = self.config.path
        if not Path(path).exists() and not _HUB_ID.fullmatch(path):
            # transformers would take it for a malformed Hub id and say so, which misleads.
            raise FileNotFoundError(f"{self.role} model dir {path} not found")
        return AutoTokenizer.from_pretrained(path)

    @cached_property
    def family(self) -> Family:
        return get_family(self.config.family, self.tokenizer)

    @cached_property
    def engine(self) -> Engine:
        if self.config.engine == "hf":
            from tessy.engines.hf import HFEngine  # loads transformers models: only `engine: hf` pays

            return HFEngine(self.config.path, self.tokenizer, name=self.config.name_on_server)
        if not self.endpoints:
            raise ValueError(f"{self.role} model: no endpoints (engine {self.config.engine!r})")
        return OpenAIEngine(
            self.endpoints,
            model=self.config.name_on_server,
            max_outstanding=self.config.max_requests_per_endpoint,
        )

    def count_tokens(self, text: str) -> int:
        # A fast tokenizer's backend directly: synthesis counts every kept span, and the transformers
        # call around the backend adds a third (a 50-word text: 46 us against 35).
        if backend := getattr(self.tokenizer, "backend_tokenizer", None):
            return len(backend.encode(text, add_special_tokens=False))
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)


def load_model(cfg: PipelineConfig, role: str, endpoints: Endpoints | None = None) -> Model:
    return Model(role, cfg.model(role), list((endpoints or {}).get(role, [])))


class PredictorRef(Protocol):
    """A trained boundary predictor as the synthesizer needs it (the warehouse's registry holds them)."""

    predictor_id: str
    path: str


def synthesizer_from_config(
    cfg: PipelineConfig, endpoints: Endpoints, predictors: Mapping[str, PredictorRef]
) -> Synthesizer:
    """The Synthesizer a config describes: both models, their predictors (when TESSY runs), settings."""
    s = cfg.synthesis
    writers = {}
    for role, k in (("student", s.k_student), ("teacher", s.k_teacher)):
        model = load_model(cfg, role, endpoints)
        ref = predictors.get(role)
        writers[role] = Writer(
            name=role,
            engine=model.engine,
            family=model.family,
            count_tokens=model.count_tokens,
            boundary=BatchedBoundary(BoundaryPredictor(ref.path, switch_confidence=s.switch_confidence))
            if ref and "tessy" in s.methods
            else None,
            k=k,
            model=model.config.name_on_server,
            predictor_id=ref.predictor_id if ref else "",
        )
    return Synthesizer(
        writers["student"], writers["teacher"], Settings.from_config(s), writers["student"].count_tokens
    )
