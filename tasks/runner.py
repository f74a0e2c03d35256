"""The task runner a config names: threads of the flow's process, or tasks on a Ray cluster."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from tessy.config import RunnerConfig


def task_runner(runner: RunnerConfig) -> TaskRunner:
    if runner.kind == "ray":
        from prefect_ray import RayTaskRunner  # only a cluster needs Ray installed (tessy[cluster])

        # Without an address, Ray starts a local instance for the flow and stops it after.
        return RayTaskRunner(address=runner.address)
    # No cap of its own: the flow submits exactly `runner.parts` parts, each on its own thread.
    return ThreadPoolTaskRunner()


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
