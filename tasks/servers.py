"""Model servers as Prefect tasks: starting them is a named, retried step whose failure logs the tail
of the vLLM log, and stopping them always runs, so both show in the UI with their timings."""

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from tessy.config import PipelineConfig
from tessy.engines.servers import ServerError, ServerGroup
from tessy.runtime import ROLES, role_endpoints, server_log_dir, server_specs


@task(
    name="start-model-servers",
    task_run_name="start model servers",
    retries=1,
    retry_delay_seconds=15,
    cache_policy=NO_CACHE,  # a running server is not a result to cache
)
def start_servers(cfg: PipelineConfig, roles: tuple[str, ...]) -> ServerGroup:
    logger = get_run_logger()
    specs = server_specs(cfg, roles)
    group = ServerGroup(list(specs.values()), log_dir=server_log_dir(cfg))
    for role, spec in specs.items():
        logger.info("starting vLLM for %s: %s, %d replica(s)", role, spec.model, spec.replicas)
    start = time.monotonic()
    try:
        group.start()
    except ServerError as e:
        logger.error("model servers failed to start (logs in %s): %s", server_log_dir(cfg), e)
        raise
    endpoints = ", ".join(f"{name} {' '.join(urls)}" for name, urls in group.endpoints.items())
    logger.info("servers healthy after %.0f s: %s", time.monotonic() - start, endpoints)
    return group


@task(name="stop-model-servers", task_run_name="stop servers", cache_policy=NO_CACHE)
def stop_servers(group: ServerGroup) -> None:
    group.stop()
    get_run_logger().info("stopped %d server(s)", len(group.servers))


@contextmanager
def served(
    cfg: PipelineConfig, roles: tuple[str, ...] = ROLES, running: dict[str, list[str]] | None = None
) -> Iterator[dict[str, list[str]]]:
    """Endpoint URLs per role for the block: `running` ones when a parent flow started the servers,
    otherwise the config's local vLLM servers, started and stopped as tasks around the block."""
    if running is not None:
        yield running
        return
    if not server_specs(cfg, roles):
        yield role_endpoints(cfg, roles, {})
        return
    group = start_servers(cfg, roles)
    try:
        yield role_endpoints(cfg, roles, group.endpoints)
    finally:
        try:
            stop_servers(group)
        finally:
            group.stop()  # no-op once stopped; stops them even when the task cannot run (cancelled flow)
