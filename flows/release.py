"""Release: gate the traces that passed QA with Great Expectations, export an immutable release, and
publish it to the Hub when the config names a repo."""

from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow

from tasks.release import make_release, publish, unpublished_releases
from tasks.runs import run_name, stage_run
from tessy.config import DEFAULT_CONFIG, PipelineConfig


@flow(name="release", flow_run_name=run_name, log_prints=True)
def release_flow(
    config_path: Path = DEFAULT_CONFIG, name: str | None = None, cfg: PipelineConfig | None = None
) -> dict[str, Any]:
    """Gate this config's traces that passed QA with Great Expectations, export them as an immutable
    release (Parquet + dataset card) and record it in `releases`; a nightly (unnamed) release is made
    only when its rows changed. When the config names `release.hub_repo` (HF_TOKEN from the
    environment), publish every release not yet there, a failed upload of an earlier night included,
    each tagged with its name.

    Args:
        config_path: pipeline YAML, relative to the repository root.
        name: release name [default: {name_prefix}-{date}-{n}].
        cfg: the loaded config, when a parent flow passes its own down.
    """
    with stage_run("release", config_path, cfg) as (cfg, run):
        outcome = make_release(cfg, run.run_id, name)
        if outcome is not None:
            run.stats = {
                "release": outcome.name,
                "rows": outcome.n_rows,
                "content_hash": outcome.content_hash,
                "checks": {o.name: o.detail for o in outcome.gate.outcomes if o.detail},
            }
        if repo := cfg.release.hub_repo:
            run.stats["published"] = {
                release: publish(cfg.warehouse, release, repo, cfg.release.private, cfg.evaluate.gate)
                for release in unpublished_releases(cfg.warehouse, repo)
            }
    return {"run_id": run.run_id, "folder": outcome.url if outcome else None, **run.stats}


def main(
    config: Annotated[Path, typer.Argument(help="pipeline YAML")] = DEFAULT_CONFIG,
    name: str | None = None,
) -> None:
    release_flow(config, name)


if __name__ == "__main__":
    typer.run(main)
