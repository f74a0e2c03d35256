"""The one module that talks to the DuckDB warehouse.

DuckDB allows one writer process at a time, and a writer excludes readers: flows and the CLI open it
writable only for the short span of a load, readers (`tessy sql`, reports) open it read-only, and
both wait their turn (`TESSY_DB_WAIT_S`) instead of failing when another process holds it.
`TESSY_DB_MEMORY` (a DuckDB size, e.g. `1GB`) caps the memory a writable connection uses.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

DEFAULT_DB = Path(".tessy/warehouse.duckdb")
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def default_db_path() -> Path:
    """`TESSY_DB` when set, else `.tessy/warehouse.duckdb`."""
    return Path(os.environ.get("TESSY_DB") or DEFAULT_DB)


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("warehouse.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    return sorted(found)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Commit the block's statements together, or roll all of them back."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, table: Any) -> Iterator[None]:
    """An Arrow table visible to SQL as `name` for the block (DuckDB's zero-copy Arrow path)."""
    con.register(name, table)
    try:
        yield
    finally:
        con.unregister(name)


def migrate(con: duckdb.DuckDBPyConnection, target: int | None = None) -> list[int]:
    """Apply the migrations not yet recorded in `schema_migrations`, up to `target`; return them."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR,"
        " applied_at TIMESTAMP NOT NULL)"
    )
    done = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for version, name, sql in migrations():
        if version in done or (target is not None and version > target):
            continue
        with transaction(con):
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, name, _now()])
        applied.append(version)
    return applied


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def code_version() -> str:
    """The package version plus the git commit when running from a checkout."""
    from importlib.metadata import version

    head = Path(__file__).resolve().parent.parent / ".git" / "HEAD"
    sha = ""
    if head.exists():
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            ref_file = head.parent / ref[5:]
            ref = ref_file.read_text().strip() if ref_file.exists() else ""
        sha = ref[:12]
    return f"{version('tessy')}+{sha}" if sha else version("tessy")


class Warehouse:
    """A migrated connection with the project's reads and writes."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        self.con = con
        self.path = path

    # -- runs ---------------------------------------------------------------------------------
    def start_run(
        self, kind: str, config: dict[str, Any] | None = None, flow_run_id: str | None = None
    ) -> str:
        from tessy.hashing import config_hash

        self.reconcile_runs()
        run_id = f"{kind}-{_now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        config = config or {}
        self.con.execute(
            "INSERT INTO runs (run_id, kind, config_json, config_hash, code_version, flow_run_id, started_at,"
            " status, host, pid) VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)",
            [
                run_id,
                kind,
                json.dumps(config, sort_keys=True, default=str),
                config_hash(config),
                code_version(),
                flow_run_id,
                _now(),
                socket.gethostname(),
                os.getpid(),
            ],
        )
        return run_id

    def reconcile_runs(self) -> list[str]:
        """Mark failed the runs left `running` on this host by a process that no longer exists (killed,
        or the machine went down); returns their ids. Runs of other hosts are left to those hosts."""
        rows = self.con.execute(
            "SELECT run_id, pid FROM runs WHERE status = 'running' AND host = ?", [socket.gethostname()]
        ).fetchall()
        dead = [run_id for run_id, pid in rows if pid is None or not _process_alive(pid)]
        for run_id in dead:
            self.finish_run(run_id, "failed", {"error": "its process died before the run finished"})
        return dead

    def finish_run(self, run_id: str, status: str, stats: dict[str, Any] | None = None) -> None:
        self.con.execute(
            "UPDATE runs SET finished_at = ?, status = ?, stats_json = ? WHERE run_id = ?",
            [_now(), status, json.dumps(stats or {}, sort_keys=True), run_id],
        )

    def recent_runs(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` runs, newest first."""
        return self.frame(
            "SELECT run_id, kind, status, started_at, finished_at, stats_json FROM runs"
            " ORDER BY started_at DESC LIMIT ?",
            [limit],
        ).to_dicts()

    # -- reads --------------------------------------------------------------------------------
    def frame(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> pl.DataFrame:
        """Run a query and return a Polars frame."""
        return self.con.sql(sql, params=params).pl()

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        # fetchall: DuckDB keeps a partly fetched result open and refuses the next statement.
        rows = self.con.execute(sql, params or []).fetchall()
        return rows[0][0] if rows else None


# Read-only connections (analysts' `tessy sql` among them) reach nothing but the warehouse: no
# files, no network, no extension installs, and the settings cannot be switched back.
LOCKED_DOWN = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}


class QueryRefused(ValueError):
    """An analyst's query that is more than one statement."""


def read_query(path: Path | str | None, sql: str) -> pl.DataFrame:
    """One statement against a read-only, locked-down connection (the engine refuses writes, file and
    network access itself)."""
    if (n := len(duckdb.extract_statements(sql))) != 1:
        raise QueryRefused(f"one SQL statement per query, got {n}")
    with open_warehouse(path, read_only=True) as wh:
        return wh.frame(sql)


class WarehouseBusy(RuntimeError):
    """Another process held the warehouse for longer than we were willing to wait."""


def lock_wait_s() -> float:
    """How long to wait for another process's hold on the warehouse: `TESSY_DB_WAIT_S`, default 600."""
    return float(os.environ.get("TESSY_DB_WAIT_S") or 600)


def _connect(path: Path, read_only: bool, wait_s: float) -> duckdb.DuckDBPyConnection:
    """Connect, waiting our turn while another process holds the file: DuckDB allows one writer
    process, and a writer excludes readers, but every stage holds it only for short reads and writes."""
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        try:
            if read_only:
                return duckdb.connect(str(path), read_only=True, config=LOCKED_DOWN)
            con = duckdb.connect(str(path))
            # Stages log to files and the Prefect UI, where a long query's terminal bar is noise.
            con.execute("SET enable_progress_bar = false")
            if memory := os.environ.get("TESSY_DB_MEMORY"):
                # DuckDB keeps what it reads cached up to its limit (80% of RAM by default) and spills
                # past it: a cap bounds a night's memory whatever the history.
                con.execute("SET memory_limit = ?", [memory])
            return con
        except duckdb.IOException as e:
            creating = "not a valid DuckDB database file" in str(e) and _being_created(path)
            if "Could not set lock" not in str(e) and not creating:
                raise
            if time.monotonic() + delay > deadline:
                holder = m.group(1) if (m := re.search(r"held in (.*?)\. See", str(e))) else "another process"
                raise WarehouseBusy(f"warehouse {path} still held by {holder} after {wait_s:.0f} s") from None
            time.sleep(delay)
            # Polled often, so a waiting reader gets in at the writer's next gap between transactions
            # (an ingest leaves about half a second between batches); the file lock is not a queue.
            delay = min(delay * 2, 0.2)


def _being_created(path: Path) -> bool:
    """Whether another process has created the file but not yet written its headers (DuckDB writes
    three 4 KiB blocks first): opening it then fails as "not a valid DuckDB database file"."""
    try:
        return path.stat().st_size < 3 * 4096
    except FileNotFoundError:
        return True


@contextmanager
def open_warehouse(
    path: Path | str | None = None, *, read_only: bool = False, wait_s: float | None = None
) -> Iterator[Warehouse]:
    """Open (creating and migrating when writable) the warehouse at `path`, waiting up to `wait_s`
    (default `lock_wait_s()`) while another process holds it."""
    path = Path(path) if path else default_db_path()
    wait_s = lock_wait_s() if wait_s is None else wait_s
    if read_only:
        if not path.exists():
            raise FileNotFoundError(f"no warehouse at {path}: run `tessy ingest` first or pass --db")
        con = _connect(path, True, wait_s)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = _connect(path, False, wait_s)
        migrate(con)
    try:
        yield Warehouse(con, path)
    finally:
        con.close()


@dataclass
class Run:
    run_id: str
    stats: dict[str, Any] = field(default_factory=dict)


@contextmanager
def recorded_run(
    db: Path | str | None, kind: str, config: dict[str, Any], flow_run_id: str | None = None
) -> Iterator[Run]:
    """A `runs` row for the block: completed with the block's stats, or failed with the error. The
    warehouse is opened only to start and to finish the run, so the block may open it too."""
    with open_warehouse(db) as wh:
        run = Run(wh.start_run(kind, config, flow_run_id=flow_run_id))
    try:
        yield run
    except BaseException as exc:
        with open_warehouse(db) as wh:
            wh.finish_run(run.run_id, "failed", {**run.stats, "error": repr(exc)})
        raise
    with open_warehouse(db) as wh:
        wh.finish_run(run.run_id, "completed", run.stats)
