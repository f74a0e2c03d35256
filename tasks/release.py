"""Release tasks: gate + export + record a release; publish it to the Hub."""

from pathlib import Path

from prefect import State, task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from prefect.tasks import exponential_backoff

from tasks.artifacts import file_link, hub_link
from tessy.config import PipelineConfig
from tessy.release import card_markdown
from warehouse.db import open_warehouse
from warehouse.releases import (
    ReleaseOutcome,
    ReleaseTampered,
    create_release,
    next_release_name,
    publish_release,
    unpublished,
)


@task(task_run_name="gate and export a {cfg.name} release")
def make_release(cfg: PipelineConfig, run_id: str, name: str | None = None) -> ReleaseOutcome | None:
    """A named release is always made; a nightly one (no name) only when its rows changed."""
    nightly = name is None
    if nightly:
        with open_warehouse(cfg.warehouse) as wh:
            name = next_release_name(wh, cfg.release.name_prefix)
    outcome = create_release(cfg, name, run_id, if_changed=nightly)
    if outcome is None:
        get_run_logger().info("no new rows since the newest release: no release made")
        return None
    create_markdown_artifact(
        card_markdown(outcome.folder / "README.md"), key="release-card", description=f"release {name}"
    )
    file_link("release-folder", outcome.folder, f"files of release {name} on the worker")
    return outcome


@task(task_run_name="releases not yet on {repo_id}")
def unpublished_releases(db: Path, repo_id: str) -> list[str]:
    with open_warehouse(db, read_only=True) as wh:
        return unpublished(wh, repo_id)


def _worth_retrying(task: object, task_run: object, state: State) -> bool:
    """Hub and network failures are retried; a tampered, unknown or unready release fails again."""
    return not isinstance(state.result(raise_on_failure=False), ReleaseTampered | ValueError)


@task(
    task_run_name="publish {name} to {repo_id}",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=30),
    retry_condition_fn=_worth_retrying,
)
def publish(db: Path, name: str, repo_id: str, private: bool) -> str | None:
    revision = publish_release(db, name, repo_id, private=private).revision
    if revision:
        hub_link("release-hub", repo_id, revision, f"release {name} on the Hub")
    return revision
