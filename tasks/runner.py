"""The task runner a config names (threads of the flow's process, or tasks on a Ray cluster), and the
one way a flow runs a stage's parts on it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from prefect import Task, flow, get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from tessy.config import RunnerConfig


def task_runner(runner: RunnerConfig, api_url: str | None = None) -> TaskRunner:
    """Threads, or Ray tasks whose workers report to the Prefect API at `api_url`."""
    if runner.kind == "ray":
        from prefect_ray import RayTaskRunner  # only a cluster needs Ray installed (tessy[cluster])

        # Without an address, Ray starts a local instance for the flow and stops it after.
        env = {"PREFECT_API_URL": api_url} if api_url else {}
        return RayTaskRunner(address=runner.address, init_kwargs={"runtime_env": {"env_vars": env}})
    # No cap of its own: the flow submits exactly `runner.parts` parts, each on its own thread.
    return ThreadPoolTaskRunner()


R = TypeVar("R")


def map_parts(runner: RunnerConfig, name: str, step: Task[..., R], calls: list[tuple[Any, ...]]) -> list[R]:
    """`step(*call)` for every call at once, as the tasks of one subflow `name` on the runner that
    `runner` names (a flow's runner is fixed when it is declared; the config picks it per run).
    No calls, no subflow: a night with nothing new does not reach for the cluster."""
    if not calls:
        return []

    # A Ray worker has its node's environment, and runs a task under the Prefect settings it carries:
    # with no server set (a flow on a temporary one) each worker started a temporary server of its
    # own (seconds per part), and the parts' task runs and logs never reached this flow's. So the
    # workers get this flow's API in both: the settings for the task, the environment for the
    # threads that ship its logs.
    api_url = str(get_client(sync_client=True).api_url) if runner.kind == "ray" else None

    @flow(name=name, task_runner=task_runner(runner, api_url))
    def parts() -> list[R]:
        futures = [step.submit(*call) for call in calls]
        return [f.result() for f in futures]

    if api_url is None:
        return parts()
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        return parts()


@contextmanager
def local_ray_cluster(
    nodes: int = 2, cpus_per_node: int = 1, env: dict[str, str] | None = None
) -> Iterator[str]:
    """A Ray cluster of `nodes` node processes on loopback (`ray start --head`, then workers joining
    it), for tests and benches; yields the head's address and stops every Ray process of this machine
    after. The nodes' workers inherit `env` on top of this process's environment, as workers on a real
    cluster inherit their node's."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray = Path(sys.executable).with_name("ray")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", **(env or {})}
    common = [f"--num-cpus={cpus_per_node}", "--disable-usage-stats"]
    start = [[ray, "start", "--head", f"--port={port}", "--include-dashboard=false", *common]]
    start += [[ray, "start", f"--address=127.0.0.1:{port}", *common]] * (nodes - 1)
    try:
        for command in start:
            subprocess.run(command, env=env, check=True, capture_output=True)
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True)
