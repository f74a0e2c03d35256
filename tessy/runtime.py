"""From a pipeline config to running engines: start the local vLLM servers a config asks for, and
build each role's Engine, prompt family and tokenizer. Flows start servers once and hand endpoint
URLs (plain strings) to their tasks, which build engines locally."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from tessy.config import ModelConfig, PipelineConfig
from tessy.engines.base import Engine
from tessy.templates import Family, get_family

ROLES = ("student", "teacher")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # org/name


def served_name(model: ModelConfig) -> str:
    return model.served_name or Path(model.path).name


def server_spec(model: ModelConfig):
    from tessy.engines.servers import ServerSpec

    return ServerSpec(
        model=Path(model.path),
        name=served_name(model),
        max_model_len=model.max_model_len,
        kv_cache_gib=model.kv_cache_gib,
        replicas=model.replicas,
        gpus_per_replica=model.gpus_per_replica,
        cpus_per_replica=model.cpus_per_replica,
        first_gpu=model.first_gpu,
        first_cpu=model.first_cpu,
        nice=model.nice,
        extra_args=tuple(model.extra_args),
    )


def server_specs(cfg: PipelineConfig, roles: tuple[str, ...] = ROLES) -> dict[str, Any]:
    """role -> ServerSpec for the roles whose servers tessy starts itself (`engine: vllm`)."""
    return {role: server_spec(cfg.model(role)) for role in roles if cfg.model(role).engine == "vllm"}


def role_endpoints(
    cfg: PipelineConfig, roles: tuple[str, ...], served: dict[str, list[str]]
) -> dict[str, list[str]]:
    """Endpoint URLs per role: the servers tessy started (`served`: served name -> URLs), configured
    ones for `engine: openai`, none for `engine: hf` (in-process)."""
    specs = server_specs(cfg, roles)
    return {
        role: served[specs[role].served_name] if role in specs else list(cfg.model(role).endpoints)
        for role in roles
    }


@contextmanager
def model_endpoints(
    cfg: PipelineConfig, roles: tuple[str, ...] = ROLES, running: dict[str, list[str]] | None = None
) -> Iterator[dict[str, list[str]]]:
    """Endpoint URLs per role for the block: `running` ones when a caller already started the servers,
    otherwise local vLLM servers started (and stopped after) for `engine: vllm` roles."""
    from tessy.engines.servers import serve

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
        from transformers import AutoTokenizer

        path = self.config.path
        if not Path(path).exists() and not _HUB_ID.fullmatch(path):
            # transformers would take it for a malformed Hub id and say so, which misleads.
            raise FileNotFoundError(f"{self.role} model dir {path} not found")
        return AutoTokenizer.from_pretrained(path)

    @cached_property
    def family(self) -> Family:
        return get_family(
            self.config.family, self.tokenizer if self.config.family in ("auto", "generic") else None
        )

    @cached_property
    def engine(self) -> Engine:
        if self.config.engine == "hf":
            from tessy.engines.hf import HFEngine

            return HFEngine(self.config.path, self.tokenizer, name=served_name(self.config))
        if not self.endpoints:
            raise ValueError(f"{self.role} model: no endpoints (engine {self.config.engine!r})")
        from tessy.engines.openai import OpenAIEngine

        return OpenAIEngine(self.endpoints, model=served_name(self.config))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)


def load_model(cfg: PipelineConfig, role: str, endpoints: dict[str, list[str]] | None = None) -> Model:
    return Model(role, cfg.model(role), list((endpoints or {}).get(role, [])))


def judge_from_config(cfg: PipelineConfig, endpoints: dict[str, list[str]] | None = None):
    """The contest judge a config asks for (`filter.judge`), built on the role's model for `llm`."""
    from tessy.filtering.judges import heuristic_judge, llm_judge
    from tessy.filtering.llm import JudgeConfig

    if cfg.filter.judge == "heuristic":
        return heuristic_judge()
    model = load_model(cfg, cfg.filter.model, endpoints)
    config = JudgeConfig(attempts=cfg.filter.attempts, concurrency=cfg.filter.concurrency)
    return llm_judge(model.engine, model.family, served_name(model.config), config)


def judge_roles(cfg: PipelineConfig) -> tuple[str, ...]:
    """The roles whose models the filter needs running."""
    return (cfg.filter.model,) if cfg.filter.judge == "llm" else ()


def filter_identity(cfg: PipelineConfig) -> tuple[str, str]:
    """(filter name, version) whose contest labels select the questions to synthesize."""
    from tessy.filtering.heuristic import HEURISTIC_VERSION
    from tessy.filtering.llm import judge_version

    if cfg.filter.judge == "heuristic":
        return "heuristic", HEURISTIC_VERSION
    model = load_model(cfg, cfg.filter.model)
    return "llm", judge_version(model.family, served_name(model.config))


@dataclass(frozen=True)
class PredictorRef:
    predictor_id: str
    path: str


def trace_id(cfg: PipelineConfig, question_id: str, method: str, predictors: dict[str, PredictorRef]) -> str:
    """Same question + method + models + synthesis settings (+ predictors for TESSY) = same id."""
    from tessy.hashing import config_hash

    return config_hash(
        {
            "question_id": question_id,
            "method": method,
            "student": cfg.model("student").path,
            "teacher": cfg.model("teacher").path,
            "synthesis": cfg.synthesis.identity(),
            "predictors": sorted(p.predictor_id for p in predictors.values()) if method == "tessy" else [],
        }
    )


def synthesizer_from_config(
    cfg: PipelineConfig, endpoints: dict[str, list[str]], predictors: dict[str, PredictorRef]
):
    """The Synthesizer a config describes: both models, their predictors (when TESSY runs), settings."""
    from tessy.engines.base import Sampling
    from tessy.synthesis.machine import Settings, Synthesizer, Writer

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
            boundary=_boundary(ref.path) if ref and "tessy" in s.methods else None,
            k=k,
            model=served_name(model.config),
            predictor_id=ref.predictor_id if ref else "",
        )
    settings = Settings(
        mode=s.mode,
        span_cap=s.span_cap,
        check_every=s.check_every,
        max_thinking_tokens=s.max_thinking_tokens,
        max_answer_tokens=s.max_answer_tokens,
        word_boundary=s.word_boundary,
        max_attempts=s.max_attempts,
        sampling=Sampling(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k, min_p=s.min_p),
    )
    return Synthesizer(writers["student"], writers["teacher"], settings, writers["student"].count_tokens)


def _boundary(path: str):
    from tessy.boundary.predictor import BoundaryPredictor
    from tessy.synthesis.batching import BatchedBoundary

    return BatchedBoundary(BoundaryPredictor(path))


def synthesize_jobs(
    cfg: PipelineConfig,
    endpoints: dict[str, list[str]],
    predictors: dict[str, PredictorRef],
    jobs: list,
    shard_dir: Path,
    *,
    show_progress: bool = True,
    report: Callable[[str], None] | None = None,
):
    """Run `jobs` (synthesis Jobs) to shards in `shard_dir`; returns the scheduler's RunStats.
    `report` gets a progress line every half minute."""
    import asyncio

    from tessy.synthesis.scheduler import run_jobs
    from tessy.synthesis.shards import ShardWriter

    synthesizer = synthesizer_from_config(cfg, endpoints, predictors)
    writer = ShardWriter(shard_dir, cfg.synthesis.shard_size)
    return asyncio.run(
        run_jobs(
            synthesizer,
            jobs,
            writer,
            concurrency=cfg.synthesis.concurrency,
            show_progress=show_progress,
            report=report,
        )
    )


def shard_dir(cfg: PipelineConfig) -> Path:
    return cfg.workdir / "shards"
