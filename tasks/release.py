"""Release tasks: gate + export + record a release; publish it to the Hub."""

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact

from tessy.config import PipelineConfig
from warehouse.db import open_warehouse
from warehouse.releases import ReleaseOutcome, create_release, next_release_name, publish_release


@task
def make_release(cfg: PipelineConfig, run_id: str, name: str | None = None) -> ReleaseOutcome:
    if name is None:
        with open_warehouse(cfg.warehouse) as wh:
            name = next_release_name(wh, cfg.release.name_prefix)
    outcome = create_release(cfg, name, run_id)
    create_markdown_artifact(
        (outcome.folder / "README.md").read_text(), key="release-card", description=f"release {name}"
    )
    return outcome


@task(retries=2, retry_delay_seconds=30)
def publish(db: Path, name: str, repo_id: str, private: bool) -> str | None:
    return publish_release(db, name, repo_id, private=private).revision
