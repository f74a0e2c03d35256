"""Storage URLs: a local folder, `s3://bucket/prefix`, `gs://...`, or any other fsspec protocol. The
synthesis parts, which may run on other machines, and the loader exchange plans, shards and predictor
weights through one such folder; credentials come from each protocol's own environment (for S3, the
AWS variables or profile), never from the config."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from tessy.config import PipelineConfig
from tessy.errors import ConfigError


class Folder:
    """One folder of a storage URL. Files appear whole: a local file is written under a temporary name
    and renamed, and an object store's put is atomic, so a reader never sees half a file."""

    def __init__(self, url: str | Path):
        self.url = str(url).rstrip("/") or "/"
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url)
        except (ValueError, ImportError) as e:  # an unknown protocol, or its package not installed
            raise ConfigError(f"storage URL {self.url}: {e}") from None

    @property
    def local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def __truediv__(self, name: str) -> Folder:
        return Folder(f"{self.url}/{name}")

    def __repr__(self) -> str:
        return f"Folder({self.url!r})"

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def names(self, suffix: str = ".parquet") -> list[str]:
        """The names of the files directly in the folder that end in `suffix`, sorted, hidden ones
        (temporary files, probes) left out; [] when the folder does not exist. Listings are read fresh:
        other machines write here."""
        self.fs.invalidate_cache(self.root)
        try:
            entries = self.fs.ls(self.root, detail=True)
        except FileNotFoundError:
            return []
        return sorted(
            name
            for e in entries
            if e["type"] == "file"
            and (name := e["name"].rstrip("/").rsplit("/", 1)[-1]).endswith(suffix)
            and not name.startswith(".")
        )

    def write_table(self, name: str, table: pa.Table) -> str:
        """Write `table` as Parquet file `name`; returns its URL."""
        if self.local:
            self.fs.makedirs(self.root, exist_ok=True)
            tmp = self.path(f".{name}.{uuid.uuid4().hex}.tmp")
            pq.write_table(table, tmp, filesystem=self.fs)
            self.fs.mv(tmp, self.path(name))
        else:
            pq.write_table(table, self.path(name), filesystem=self.fs)
        return f"{self.url}/{name}"

    def read_table(self, name: str, **kwargs: object) -> pa.Table:
        return pq.read_table(self.path(name), filesystem=self.fs, **kwargs)

    def move(self, name: str, to: Folder) -> None:
        """Move file `name` into folder `to` (same storage)."""
        if to.local:
            to.fs.makedirs(to.root, exist_ok=True)
        self.fs.mv(self.path(name), to.path(name))

    def exists(self, name: str = "") -> bool:
        """Whether file `name` is here (the folder itself without a name)."""
        return self.fs.exists(self.path(name) if name else self.root)

    def remove(self) -> None:
        """Delete the folder and everything in it (nothing when it does not exist)."""
        if self.exists():
            self.fs.rm(self.root, recursive=True)

    def put_file(self, local: str | Path, name: str) -> str:
        """Copy local file `local` to file `name` here; returns its URL."""
        if self.local:
            self.fs.makedirs(str(Path(self.path(name)).parent), exist_ok=True)
        self.fs.put_file(str(local), self.path(name))
        return f"{self.url}/{name}"

    def put_dir(self, local: str | Path, name: str) -> Folder:
        """Copy local folder `local` to `name` here (its files, recursively); returns the copy."""
        target = self / name
        for path in sorted(p for p in Path(local).rglob("*") if p.is_file()):
            target.put_file(path, path.relative_to(local).as_posix())
        return target

    def get_dir(self, local: str | Path) -> Path:
        """Copy this folder's files into local folder `local` (written whole: a half copy is never
        left under the final name)."""
        local = Path(local)
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex}.tmp")
        for path in self.fs.find(self.root):
            rel = path[len(self.root.rstrip("/")) + 1 :]
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(path, str(tmp / rel))
        try:
            tmp.rename(local)
        except OSError:  # another process of this machine fetched it first
            shutil.rmtree(tmp)
        return local

    def check_writable(self) -> str:
        """Why files cannot be written and read back here ("" when they can): a probe file is written,
        listed and removed, so missing credentials, a missing bucket or a typo fail before any work."""
        probe = f".tessy-probe-{uuid.uuid4().hex}.parquet"
        try:
            self.write_table(probe, pa.table({"probe": [1]}))
            if not self.fs.exists(self.path(probe)):
                return "does not keep a file written there"
            self.fs.rm(self.path(probe))
        except Exception as e:  # noqa: BLE001 - every storage error becomes one line of the preflight
            return f"cannot be written ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        return ""


def shared_storage(cfg: PipelineConfig) -> Folder:
    """The folder every part of a run reaches: the config's storage URL, or the workdir."""
    return Folder(cfg.storage or cfg.workdir)


def apart_from_workdir(cfg: PipelineConfig) -> bool:
    """Whether the config names a storage URL other than its workdir, where the stages write first."""
    if not cfg.storage:
        return False
    folder = Folder(cfg.storage)
    return not (folder.local and Path(folder.root).resolve() == Path(cfg.workdir).resolve())


def kept_at(cfg: PipelineConfig, name: str) -> str:
    """Where `store` keeps the workdir's finished folder `name`: its copy in the config's storage URL
    when that is apart from the workdir, else the workdir's folder itself."""
    return (shared_storage(cfg) / name).url if apart_from_workdir(cfg) else str(cfg.workdir / name)


def store(cfg: PipelineConfig, name: str) -> str:
    """Copy the workdir's finished folder `name` to where every machine reads it (`kept_at`),
    replacing what was there; returns that URL or path."""
    url = kept_at(cfg, name)
    if apart_from_workdir(cfg):
        Folder(url).remove()
        shared_storage(cfg).put_dir(cfg.workdir / name, name)
    return url


@contextmanager
def local_copy(url: str) -> Iterator[Path]:
    """The folder at `url` on this machine for the block: itself when it is local, else a temporary
    copy of its files."""
    folder = Folder(url)
    if folder.local:
        yield Path(folder.root)
        return
    with tempfile.TemporaryDirectory(prefix="tessy-") as tmp:
        yield folder.get_dir(Path(tmp) / "copy")


def read_table(url: str) -> pa.Table:
    """The Parquet file at `url` (what `Folder.write_table` returned)."""
    folder, name = url.rsplit("/", 1)
    return Folder(folder).read_table(name)
