"""The task runner a config names: threads of the flow's process, or tasks on a Ray cluster."""

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from tessy.config import RunnerConfig


def task_runner(runner: RunnerConfig) -> TaskRunner:
    if runner.kind == "ray":
        from prefect_ray import RayTaskRunner  # only a cluster needs Ray installed (tessy[cluster])

        # Without an address, Ray starts a local instance for the flow and stops it after.
        return RayTaskRunner(address=runner.address)
    # No cap of its own: the flow submits exactly `runner.parts` parts, each on its own thread.
    return ThreadPoolTaskRunner()
