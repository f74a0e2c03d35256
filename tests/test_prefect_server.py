"""What a user does with the README against a real Prefect server: create the work pool, deploy every
deployment of prefect.yaml, let the scheduler schedule the nightly demo, and have a process worker
run the ingest deployment on the demo config. Catches drift between Prefect and the versions of its
server's dependencies (fastapi, SQLAlchemy) that pip picks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tessy.engines.servers import free_port
from tessy.microworld.problems import export_questions
from tests.conftest import REPO
from warehouse.db import open_warehouse

PREFECT = str(Path(sys.executable).parent / "prefect")
# The checkout a worker runs from, linked into a temporary TESSY_HOME so the demo config's relative
# paths (.tessy/...) land there and not in the repository.
LINKED = ("flows", "tasks", "tessy", "warehouse", "configs", "prefect.yaml")
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass
class PrefectServer:
    api: str
    home: Path
    env: dict[str, str]
    log: Path
    timings: dict[str, float] = field(default_factory=dict)

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PREFECT, "--no-prompt", *args],
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def post(self, path: str, body: dict) -> list | dict:
        response = httpx.post(self.api + path, json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def deployment_id(self, name: str) -> str:
        found = self.post("/deployments/filter", {"deployments": {"name": {"any_": [name]}}})
        assert len(found) == 1, f"deployment {name!r}: {found}"
        return found[0]["id"]

    def scheduled_runs(self, deployment: str) -> list[dict]:
        body = {
            "deployments": {"id": {"any_": [self.deployment_id(deployment)]}},
            "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
        }
        return self.post("/flow_runs/filter", body)


def _started(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
            process.wait(wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def _wait(what: str, check, timeout: float, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    home = tmp_path_factory.mktemp("tessy-home")
    for name in LINKED:
        (home / name).symlink_to(REPO / name)
    export_questions(home / ".tessy/data/microworld.jsonl", 24, 8)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect-home")),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_PORT": str(port),
        "TESSY_HOME": str(home),
        "GX_ANALYTICS_ENABLED": "false",
    }
    server = PrefectServer(api, home, env, home / "prefect-server.log")
    start = time.monotonic()
    process = _started(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], home, env, server.log
    )

    def healthy() -> bool:
        assert process.poll() is None, f"prefect server exited:\n{server.log.read_text()[-3000:]}"
        try:
            return httpx.get(api + "/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        _wait("the Prefect server", healthy, timeout=180, every=0.5)
        server.timings["server_start_s"] = time.monotonic() - start
        yield server
    finally:
        _stop(process)


def test_deploy_schedule_and_run_a_deployment_on_a_worker(prefect_server: PrefectServer) -> None:
    server = prefect_server
    pool = server.cli("work-pool", "create", "tessy-process", "--type", "process")
    assert pool.returncode == 0, pool.stdout + pool.stderr

    start = time.monotonic()
    deploy = server.cli("deploy", "--all")
    server.timings["deploy_s"] = time.monotonic() - start
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]

    listed = server.cli("deployment", "ls")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    for name in (
        "nightly/nightly-demo",
        "nightly/nightly",
        "ingest/ingest",
        "release/release",
        "evaluate/evaluate",
    ):
        assert name in listed.stdout, listed.stdout

    # The scheduler fills the nightly demo's schedule; production's schedule is created paused.
    _wait("scheduled nightly-demo runs", lambda: server.scheduled_runs("nightly-demo"), timeout=90)
    server.timings["first_scheduled_run_s"] = time.monotonic() - start
    assert server.scheduled_runs("nightly") == []

    worker = _started(
        [PREFECT, "worker", "start", "--pool", "tessy-process"],
        server.home,
        server.env,
        server.home / "w.log",
    )
    try:
        start = time.monotonic()
        run = server.post(f"/deployments/{server.deployment_id('ingest')}/create_flow_run", {})

        def finished() -> dict | None:
            try:
                state = httpx.get(f"{server.api}/flow_runs/{run['id']}", timeout=10).json()
            except httpx.TimeoutException:  # a server busy with the run: ask again, within _wait's bound
                return None
            return state if state["state_type"] in TERMINAL else None

        final = _wait("the ingest run", finished, timeout=300, every=2)
        server.timings["ingest_run_s"] = time.monotonic() - start
    finally:
        _stop(worker)
    worker_log = (server.home / "w.log").read_text()
    assert final["state_type"] == "COMPLETED", final["state"]["message"] + "\n" + worker_log[-4000:]
    assert final["name"] == f"ingest-demo-{datetime.now(UTC):%Y-%m-%d}"
    with open_warehouse(server.home / ".tessy/warehouse.duckdb", read_only=True) as wh:
        assert wh.scalar("SELECT count(*) FROM questions") >= 32
        assert wh.scalar("SELECT flow_run_id FROM runs WHERE kind = 'ingest'") == run["id"]

    # The ingest took its turn through the warehouse writers' limit, which it created (one slot).
    limit = httpx.get(f"{server.api}/v2/concurrency_limits/tessy-warehouse", timeout=10).json()
    assert limit["limit"] == 1 and "do not exist" not in worker_log
    assert "Traceback" not in server.log.read_text(), server.log.read_text()[-4000:]
    print("prefect smoke timings:", {k: round(v, 1) for k, v in server.timings.items()})
