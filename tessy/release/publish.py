"""Publish an exported release folder to the Hugging Face Hub as a dataset repository.

The token comes from the argument or HF_TOKEN and goes only to the Hub client: it is never logged,
written, or kept in an error message (a client error is re-raised with the token masked and without
the original exception attached)."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
from huggingface_hub import DatasetCard

_CHUNK = 1 << 20


class PublishError(RuntimeError):
    pass


@dataclass(frozen=True)
class PublishResult:
    repo_id: str
    revision: str | None  # the commit id on the Hub; None for a dry run
    files: list[str]  # paths in the repo
    dry_run: bool = False


def release_files(folder: Path) -> list[str]:
    """Every file of the folder, relative and sorted; hidden ones (export staging, caches) excluded."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _file_contains(path: Path, needle: bytes) -> bool:
    overlap = len(needle) - 1
    tail = b""
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            if needle in tail + chunk:
                return True
            tail = chunk[-overlap:] if overlap else b""
    return False


def _parquet_contains(path: Path, needle: str) -> bool:
    """Parquet pages are compressed, so its string columns are searched decoded as well."""
    hits = pl.scan_parquet(path).select(pl.col(pl.String).str.contains(needle, literal=True).any()).collect()
    return any(hits.row(0)) if hits.width else False


def check_folder(
    folder: str | Path, token: str | None = None, only: Sequence[str] | None = None
) -> list[str]:
    """The files to publish if they are ready: a card whose `configs` each match Parquet files, every
    Parquet file readable, and (given a token) no file holding the token. Raises ValueError. The files
    are the folder's, or `only` these (and the card), which must all be there."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    files = release_files(folder)
    problems = []
    if only is not None:
        wanted = {"README.md", *only}
        problems += [f"{f} is missing" for f in sorted(wanted - set(files))]
        files = sorted(wanted & set(files))
    if "README.md" not in files:
        problems.append("no dataset card README.md")
    else:
        configs = DatasetCard.load(folder / "README.md").data.to_dict().get("configs") or []
        if not configs:
            problems.append("the card has no `configs` block")
        for config in configs:
            for entry in config.get("data_files", []):
                if not fnmatch.filter(files, entry["path"]):
                    problems.append(
                        f"config {config.get('config_name')!r}: no file matches {entry['path']!r}"
                    )
    parquet = [f for f in files if f.endswith(".parquet")]
    if not parquet:
        problems.append("no Parquet files")
    for name in parquet:
        try:
            pq.read_metadata(folder / name)
        except Exception as e:  # any reader error means the Hub's viewer and `datasets` fail too
            problems.append(f"{name} is not readable Parquet: {e}")
    if token:
        needle = token.encode()
        leaks = [
            f
            for f in files
            if _file_contains(folder / f, needle) or (f in parquet and _parquet_contains(folder / f, token))
        ]
        problems += [f"{f} contains the Hub token" for f in leaks]
    if problems:
        raise ValueError(f"{folder} is not ready to publish: " + "; ".join(problems))
    return files


def _masked(message: str, token: str | None) -> str:
    return message.replace(token, "***") if token else message


def publish(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    client: Any = None,
    dry_run: bool = False,
    private: bool = True,
    commit_message: str | None = None,
    only: Sequence[str] | None = None,
    tag: str | None = None,
) -> PublishResult:
    """Check the folder, create the dataset repo if needed and upload the folder in one commit, which
    also deletes data files of an earlier release that this one does not have; then tag that commit
    with `tag`, so the release stays loadable by name. `only`: upload just these files (and the card),
    which must be in the folder. `client` defaults to huggingface_hub's HfApi; a dry run only checks."""
    token = token or os.environ.get("HF_TOKEN") or None
    folder = Path(folder)
    files = check_folder(folder, token, only)
    if dry_run:
        return PublishResult(repo_id, None, files, dry_run=True)
    if client is None:
        from huggingface_hub import HfApi

        client = HfApi()
    error = None
    try:
        client.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private, token=token)
        commit = client.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="dataset",
            commit_message=commit_message or f"Release {folder.name}",
            allow_patterns=files,
            delete_patterns=["data/**"],
            token=token,
        )
        if tag:
            client.create_tag(
                repo_id, tag=tag, revision=commit.oid, repo_type="dataset", token=token, exist_ok=True
            )
    except Exception as e:  # noqa: BLE001 - any client failure becomes one masked PublishError
        error = f"{type(e).__name__}: {_masked(str(e), token)}"
    if error is not None:
        # Raised outside the handler so the client's exception (and its message) is not chained.
        raise PublishError(f"publishing {folder} to {repo_id} failed: {error}")
    return PublishResult(repo_id, commit.oid, files)
