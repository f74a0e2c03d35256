"""Is a pipeline config runnable here? Checked before a run writes anything, so that a config meant
for another machine (production storage, GPU endpoints) fails at once with one line instead of
creating folders, streaming sources or waiting on servers that are not there."""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Iterable
from pathlib import Path

import httpx

from tessy.config import PipelineConfig
from tessy.errors import ConfigError, ConfigNotReady
from tessy.sources.hub import HUB_PREFIX
from tessy.storage import Folder


def storage_problems(cfg: PipelineConfig) -> list[str]:
    """Relative paths live in the working directory and are created there. An absolute path whose
    folder is missing usually means storage that is not mounted: creating it would fill the root disk.
    A storage URL must take a probe file (credentials, bucket, protocol)."""
    paths = [("workdir", cfg.workdir), ("warehouse", cfg.warehouse)]
    problems = []
    if cfg.storage:
        try:
            folder = Folder(cfg.storage)
        except ConfigError as e:
            return [str(e)]
        if folder.local:
            paths.append(("storage", Path(cfg.storage)))
        elif why := folder.check_writable():
            problems.append(f"storage {cfg.storage} {why}")
    missing = {path.parent: label for label, path in paths if path.is_absolute() and not path.parent.exists()}
    return problems + [
        f"{label} folder {folder} does not exist (storage not mounted?)" for folder, label in missing.items()
    ]


def runner_problems(cfg: PipelineConfig, timeout_s: float = 3.0) -> list[str]:
    """Ray needs prefect-ray installed, and a cluster address that takes connections."""
    if cfg.runner.kind != "ray":
        return []
    if importlib.util.find_spec("prefect_ray") is None:
        return ["runner.kind ray needs prefect-ray: pip install 'tessy[cluster]'"]
    address = cfg.runner.address
    if not address or address == "auto":
        return []
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return [f"runner.address {address!r} is not host:port or ray://host:port"]
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        return [f"Ray cluster at {address} does not answer ({type(e).__name__}: {e})"]
    return []


def source_problems(cfg: PipelineConfig) -> list[str]:
    """Local sources must exist; Hub sources are read when the stage runs (and retried there)."""
    return [
        f"source {s.path} not found"
        for s in cfg.sources
        if not s.path.startswith(HUB_PREFIX) and not Path(s.path).exists()
    ]


def model_problems(cfg: PipelineConfig, roles: Iterable[str], timeout_s: float = 3.0) -> list[str]:
    """`vllm` models must be local dirs (tessy starts their servers); `openai` endpoints must answer."""
    problems = []
    for role in roles:
        model = cfg.model(role)
        if model.engine == "vllm" and not Path(model.path).exists():
            problems.append(f"{role} model dir {model.path} not found")
        elif model.engine == "openai":
            if not model.endpoints:
                problems.append(f"{role} model has engine openai but no endpoints")
            problems += [
                f"{role} endpoint {url} {why}"
                for url in model.endpoints
                if (why := _unreachable(url, timeout_s))
            ]
    return problems


def _unreachable(url: str, timeout_s: float) -> str:
    """Why `url` is not a running server ("" when it answers at all: any HTTP status counts)."""
    try:
        httpx.get(url.rstrip("/") + "/v1/models", timeout=timeout_s)
    except httpx.HTTPError as e:
        return f"does not answer ({type(e).__name__})"
    return ""


def ensure_ready(
    cfg: PipelineConfig,
    *,
    roles: Iterable[str] = (),
    sources: bool = False,
    runner: bool = False,
    config_path: str | Path = "",
) -> None:
    """Raise ConfigNotReady, one line listing every problem, unless the storage, the sources (when
    `sources`), the task runner's cluster (when `runner`) and the models of `roles` are there."""
    problems = (
        storage_problems(cfg)
        + (source_problems(cfg) if sources else [])
        + (runner_problems(cfg) if runner else [])
        + model_problems(cfg, roles)
    )
    if problems:
        where = f" ({config_path})" if config_path else ""
        raise ConfigNotReady(f"config {cfg.name!r}{where} cannot run on this machine: " + "; ".join(problems))
