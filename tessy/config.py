"""Typed pipeline config: one YAML file describes a whole pipeline. Relative paths are taken from the
working directory the pipeline runs in (the repository root for the shipped configs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    # A misspelled key is a config error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid")


class SourceConfig(_Strict):
    path: str = Field(description="local file, directory, .gz, or hf://org/name[/config]")
    format: str | None = Field(default=None, description="schema name; detected from the columns when unset")
    question_field: str | None = Field(default=None, description="question field for the generic schema")


class IngestConfig(_Strict):
    max_chars: int = Field(default=100_000, gt=0, description="longer questions are quarantined")
    batch_rows: int = Field(default=50_000, gt=0)


class PipelineConfig(_Strict):
    name: str
    warehouse: Path = Path(".tessy/warehouse.duckdb")
    sources: list[SourceConfig] = Field(default_factory=list)
    ingest: IngestConfig = Field(default_factory=IngestConfig)

    def public_dict(self) -> dict[str, Any]:
        """The config as stored with each run (JSON-able)."""
        return self.model_dump(mode="json")


def load_config(path: str | Path) -> PipelineConfig:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a pipeline config is a YAML mapping")
    return PipelineConfig.model_validate(data)
