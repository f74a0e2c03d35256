"""Release tasks: the release stage (gate + export + record), and publishing to the Hub with retries
for the failures a retry can fix."""

from pathlib import Path

from prefect import State, task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from prefect.tasks import exponential_backoff

from tasks.artifacts import file_link, hub_link
from tessy.config import EvaluateGateConfig, PipelineConfig
from tessy.errors import TessyError
from tessy.release import card_markdown
from tessy.stages import release as stage


@task(task_run_name="gate and export a {cfg.name} release")
def make_release(cfg: PipelineConfig, run_id: str, name: str | None = None) -> stage.ReleaseOutcome | None:
    """A named release is always made; a nightly one (no name) only when its rows changed."""
    outcome = stage.run(cfg, run_id, name)
    if outcome is None:
        get_run_logger().info("no new rows since the newest release: no release made")
        return None
    create_markdown_artifact(
        card_markdown(outcome.folder / "README.md"), key="release-card", description=f"release {outcome.name}"
    )
    file_link("release-folder", outcome.url, f"files of release {outcome.name}")
    return outcome


@task(task_run_name="releases not yet on {repo_id}")
def unpublished_releases(db: Path, repo_id: str) -> list[str]:
    return stage.unpublished_releases(db, repo_id)


def _worth_retrying(task: object, task_run: object, state: State) -> bool:
    """Hub and network failures are retried; a tampered, unknown or unready release fails again."""
    return not isinstance(state.result(raise_on_failure=False), TessyError | ValueError)


@task(
    task_run_name="publish {name} to {repo_id}",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=30),
    retry_condition_fn=_worth_retrying,
)
def publish(
    db: Path, name: str, repo_id: str, private: bool, gate: EvaluateGateConfig | None = None
) -> str | None:
    revision = stage.publish(db, name, repo_id, private=private, gate=gate).revision
    if revision:
        hub_link("release-hub", repo_id, revision, f"release {name} on the Hub")
    return revision
