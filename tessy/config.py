"""Typed pipeline config: one YAML file describes a whole pipeline. Relative paths are taken from the
working directory the pipeline runs in (the repository root for the shipped configs)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tessy.errors import ConfigError


def declared_default(section: type[BaseModel], name: str) -> Any:
    """The default `section` declares for field `name`: classes that mirror a config section (server
    specs, synthesis settings) take their defaults from here, so each default has one home."""
    return section.model_fields[name].get_default(call_default_factory=True)


class _Strict(BaseModel):
    # A misspelled key is a config error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid")


class SourceConfig(_Strict):
    path: str = Field(description="local file, directory, .gz, or hf://org/name[/config][@revision]")
    format: str | None = Field(default=None, description="schema name; detected from the columns when unset")
    question_field: str | None = Field(default=None, description="question field for the generic schema")


class IngestConfig(_Strict):
    max_chars: int = Field(default=100_000, gt=0, description="longer questions are quarantined")
    batch_rows: int = Field(default=50_000, gt=0)


class ModelConfig(_Strict):
    path: str = Field(description="local model dir (or hub id the servers can load)")
    family: str = Field(
        default="auto", description="prompt format: qwen3, gpt-oss, deepseek-r1, generic, auto"
    )
    engine: Literal["vllm", "openai", "hf"] = Field(
        default="vllm",
        description="vllm: start local vLLM servers; openai: use `endpoints`; hf: transformers in-process",
    )
    endpoints: list[str] = Field(
        default_factory=list, description="OpenAI-compatible base URLs (engine openai)"
    )
    served_name: str | None = Field(default=None, description="model name on the servers [default: dir name]")
    max_requests_per_endpoint: int | None = Field(
        default=None,
        ge=1,
        description="most requests in flight per endpoint; the rest wait [default: no cap]",
    )
    replicas: int = Field(default=1, ge=1)
    max_model_len: int = Field(default=4096, gt=0)
    kv_cache_gib: int = Field(default=2, ge=1, description="VLLM_CPU_KVCACHE_SPACE for CPU servers")
    gpus_per_replica: int = Field(default=0, ge=0)
    first_gpu: int = Field(default=0, ge=0, description="replica i: GPUs from first_gpu + i*gpus_per_replica")
    cpus_per_replica: int = Field(default=0, ge=0, description="CPU servers: cores per replica (0: vLLM's)")
    first_cpu: int = Field(
        default=0, ge=0, description="replica i: cores from first_cpu + i*cpus_per_replica"
    )
    nice: int = Field(
        default=0, ge=0, le=19, description="CPU servers: nice value, so predictors are not starved (0-19)"
    )
    extra_args: list[str] = Field(default_factory=list, description="more vLLM server arguments")

    @property
    def name_on_server(self) -> str:
        """The model's name in requests to its servers (`served_name`, else the model dir's name)."""
        return self.served_name or Path(self.path).name


class ModelsConfig(_Strict):
    student: ModelConfig
    teacher: ModelConfig


class FilterConfig(_Strict):
    judge: Literal["heuristic", "llm"] = "heuristic"
    model: Literal["student", "teacher"] = Field(default="teacher", description="the judge, for `llm`")
    attempts: int = Field(default=3, ge=1)
    concurrency: int = Field(default=64, ge=1)


class PredictorTrainConfig(_Strict):
    lr: float = 1e-4
    epochs: int = Field(default=3, ge=1)
    batch_size: int = Field(default=32, ge=1)
    max_tokens: int = Field(default=200, ge=2, description="windows are left-truncated to this many tokens")
    val_fraction: float = Field(default=0.05, gt=0, lt=1)
    device: str = "auto"


class PredictorsConfig(_Strict):
    base: str | None = Field(
        default=None, description="causal LM dir for the predictor base [default: student]"
    )
    base_layers: int | None = Field(default=None, ge=1, description="keep only the base's first N layers")
    annotator: Literal["lexicon", "llm"] = "lexicon"
    annotator_model: Literal["student", "teacher"] = "teacher"
    lexicon: Literal["microworld", "general"] = "microworld"
    questions: int = Field(default=64, ge=2, description="questions each model answers for segments")
    max_response_tokens: int = Field(default=1024, ge=1)
    window_words: int = Field(default=60, ge=5)
    windows_per_response: int = Field(default=4, ge=1)
    mixed_share: float = Field(
        default=0.5,
        ge=0,
        description="mixed windows (its text spliced with the other role's at a span boundary) per own one",
    )
    ground_truth: Literal["microworld", "none"] = Field(
        default="microworld", description="score against the microworld's known spans, not the annotator"
    )
    train: PredictorTrainConfig = Field(default_factory=PredictorTrainConfig)
    seed: int = 0


class SynthesisConfig(_Strict):
    methods: list[Literal["tessy", "teacher-only", "student-only", "teacher-think", "teacher-answer"]] = (
        Field(default_factory=lambda: ["tessy", "teacher-only", "student-only"])
    )
    mode: Literal["stream", "fixed-k"] = "stream"
    k_student: int = Field(default=5, gt=0, description="fixed-k: student tokens per step (reference code)")
    k_teacher: int = Field(default=10, gt=0, description="fixed-k: teacher tokens per step (reference code)")
    span_cap: int = Field(default=64, gt=0, description="stream: most tokens one request may write")
    check_every: int = Field(default=2, gt=0, description="stream: predictor every N new words")
    max_thinking_tokens: int = Field(default=4096, gt=0)
    max_answer_tokens: int = Field(default=1024, gt=0)
    word_boundary: Literal["extend", "drop"] = "extend"
    # The reference code never cuts at a chunk's first token; 2 keeps one-word spans from alternating.
    min_span_tokens: int = Field(
        default=2,
        ge=1,
        description="TESSY: a span keeps at least this many of its author's words before a cut",
    )
    # The reference cuts at the first token whose argmax is the other class (0.5 here). A predictor with
    # a few percent of false switches then cuts most clauses short: spans alternate word by word.
    switch_confidence: float = Field(
        default=0.5,
        ge=0.5,
        lt=1,
        description="TESSY: a span ends where the predictor gives the other class more than this probability",
    )
    # A code block drafted in the thinking is capability through and through; a cut inside it hands
    # the other model half a program (the reference code may cut anywhere).
    cut_in_code: bool = Field(
        default=False, description="TESSY: a span may end inside a fenced code block of the thinking"
    )
    # The student writes style spans only; ending the reasoning is a capability decision. Let the student
    # end it and a TESSY thinking often stops before the teacher has drafted anything.
    student_ends_thinking: bool = Field(
        default=False,
        description="TESSY: the student may end the thinking; off, its marker hands over to the teacher",
    )
    max_attempts: int = Field(default=5, ge=1)
    retry_failed: int = Field(
        default=2, ge=0, description="a failed trace is synthesized again on up to this many later nights"
    )
    temperature: float = 0.7
    top_p: float = 0.8
    top_k: int = 20
    min_p: float = 0.0
    concurrency: int = Field(default=64, ge=1, description="samples in flight per worker")
    # On a machine whose cores the servers use, predictor forwards on every core fight them: on 2
    # cores, one thread ran bench/synthesis.py's TESSY 14% faster (1,796 against 1,571 kept tok/s).
    predictor_threads: int | None = Field(
        default=1,
        ge=1,
        description="torch threads of the boundary predictors while a worker synthesizes (None: torch's own)",
    )
    shard_size: int = Field(default=64, ge=1)
    limit: int | None = Field(default=None, description="most questions per run")

    def identity(self) -> dict[str, Any]:
        """The settings that change what a trace holds (not how fast it is made)."""
        return self.model_dump(
            exclude={"methods", "concurrency", "predictor_threads", "shard_size", "limit", "retry_failed"}
        )


class QAConfig(_Strict):
    run_code: bool = Field(default=True, description="run answers' code against the questions' tests")
    unsafe_exec: bool = Field(
        default=False,
        description="without a sandbox (bubblewrap), run code anyway, unisolated: throwaway machines only",
    )
    student_nll: bool = Field(default=True, description="score the thinking under the student model")
    nll_engine: Literal["auto", "server", "hf"] = Field(
        default="auto",
        description="student NLL on the student's servers (prompt log-probs) or in-process with transformers;"
        " auto: the servers when they are running (a parent flow's, or `engine: openai` endpoints)",
    )
    timeout_s: float = Field(default=5.0, gt=0)
    memory_mb: int = Field(default=512, gt=0)
    workers: int = Field(default=2, ge=1)


class ReleaseConfig(_Strict):
    name_prefix: str = Field(
        default="tessy",
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="nightly releases are named {prefix}-{date}-{n}",
    )
    methods: list[str] = Field(default_factory=lambda: ["tessy"], description="methods a release holds")
    config_name: str = "default"
    max_rows_per_shard: int = Field(default=10_000, ge=1)
    require_solved: bool = Field(
        default=False, description="keep only traces whose answer passes its question's tests"
    )
    min_solved_ratio: float = Field(
        default=0.9,
        ge=0,
        description="gate: TESSY's solved rate at least this times teacher-only's, when both were made",
    )
    hub_repo: str | None = Field(default=None, description="publish nightly releases here (needs HF_TOKEN)")
    private: bool = True
    license: str = "apache-2.0"


class FinetuneConfig(_Strict):
    mode: Literal["full", "lora"] = Field(default="full", description="full-parameter, or LoRA merged after")
    epochs: int = Field(default=2, ge=1)
    lr: float = Field(default=1e-4, gt=0)
    batch_size: int = Field(default=16, ge=1, description="rows per device per step")
    gradient_accumulation: int = Field(default=1, ge=1, description="steps per update (batch x this)")
    gradient_checkpointing: bool = Field(default=False, description="recompute activations: long rows")
    max_length: int = Field(default=2048, ge=16, description="tokens per training row (longer are cut)")
    lora_r: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    device: str = "auto"


class EvaluateGateConfig(_Strict):
    enabled: bool = Field(default=False, description="block publishing when the fine-tune does not gain")
    method: str = "tessy"
    min_gain: float = Field(default=0.0, description="pass@1 over the base's that the method must reach")


class EvaluateConfig(_Strict):
    benchmark: str = Field(
        default=".tessy/data/microworld-bench.jsonl",
        description="JSONL of held-out problems with tests (written by `tessy microworld benchmark`)",
    )
    methods: list[str] = Field(
        default_factory=lambda: ["tessy", "teacher-only", "student-only"],
        description="each method's traces fine-tune the student once per seed",
    )
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    max_problems: int | None = Field(default=None, ge=1, description="the benchmark's first N problems")
    max_train_rows: int | None = Field(
        default=None, ge=1, description="traces per method (the same questions)"
    )
    samples: int = Field(default=1, ge=1, description="k responses per problem")
    max_tokens: int = Field(default=2048, gt=0, description="tokens per response, thinking and answer")
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    concurrency: int = Field(default=64, ge=1)
    server_args: list[str] = Field(
        default_factory=list, description="more vLLM arguments for the servers of the models evaluated"
    )
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    gate: EvaluateGateConfig = Field(default_factory=EvaluateGateConfig)


class RunnerConfig(_Strict):
    """Where the synthesis parts run: threads of the flow's process, or tasks of a Ray cluster."""

    kind: Literal["threads", "ray"] = "threads"
    address: str | None = Field(
        default=None,
        description="ray: an existing cluster (host:port, or ray://host:10001); none starts a local Ray",
    )
    parts: int = Field(default=1, ge=1, description="synthesis parts run side by side")


class PipelineConfig(_Strict):
    name: str
    warehouse: Path = Path(".tessy/warehouse.duckdb")
    workdir: Path = Field(default=Path(".tessy/work"), description="shards, predictors, reports, releases")
    # Parts on other machines cannot read this machine's workdir: give them a URL they all reach.
    storage: str | None = Field(
        default=None,
        description="folder the synthesis parts share for plans, shards and predictor weights: a path, "
        "s3://bucket/prefix, gs://..., any fsspec URL [default: workdir]",
    )
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    models: ModelsConfig | None = None
    filter: FilterConfig = Field(default_factory=FilterConfig)
    predictors: PredictorsConfig = Field(default_factory=PredictorsConfig)
    synthesis: SynthesisConfig = Field(default_factory=SynthesisConfig)
    qa: QAConfig = Field(default_factory=QAConfig)
    release: ReleaseConfig = Field(default_factory=ReleaseConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)

    def model(self, role: str) -> ModelConfig:
        if self.models is None:
            raise ConfigError(f"config {self.name!r} names no models; add a `models:` section")
        return getattr(self.models, role)

    def public_dict(self) -> dict[str, Any]:
        """The config as stored with each run (JSON-able)."""
        return self.model_dump(mode="json")


DEFAULT_CONFIG = Path("configs/demo.yaml")


def load_config(
    path: str | Path = DEFAULT_CONFIG,
    db: str | Path | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> PipelineConfig:
    """The pipeline config at `path`, the one loader of the CLI and the flows. The warehouse is `db`
    when given, else `TESSY_DB` when set, else the config's; `overrides` replace settings per section
    (`{"filter": {"judge": "heuristic"}}`)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a pipeline config is a YAML mapping")
    if "workers" in (data.get("synthesis") or {}):
        raise ConfigError(f"{path}: synthesis.workers is now runner.parts (see `runner:` in the README)")
    for section, values in (overrides or {}).items():
        data[section] = {**(data.get(section) or {}), **values}
    if db := db or os.environ.get("TESSY_DB"):
        data["warehouse"] = str(db)
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"{path}: {problems}") from None
