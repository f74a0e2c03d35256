"""Nightly: ingest -> filter -> predictors (when stale) -> synthesize new questions -> QA -> release
(gated by Great Expectations) -> publish (when configured). The model servers start once and serve
every stage that needs them."""

from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow

from flows.filter import filter_flow
from flows.ingest import ingest_flow
from flows.predictors import predictors_flow
from flows.qa import qa_flow
from flows.release import release_flow
from flows.synthesize import synthesize_flow
from tasks.runs import run_name
from tasks.servers import served
from tessy.config import DEFAULT_CONFIG, load_config
from tessy.preflight import ensure_ready
from tessy.runtime import ROLES


@flow(name="nightly", flow_run_name=run_name, log_prints=True)
def nightly_flow(config_path: Path = DEFAULT_CONFIG) -> dict[str, Any]:
    """The whole pipeline: ingest -> filter -> predictors (when stale) -> synthesize new questions ->
    QA -> release (Great Expectations gate) -> publish (when the config names a Hub repo). The model
    servers start once for the stages that need them (QA scores the student NLL on the student's). A
    config whose storage, sources, Ray cluster, models or servers are missing on this machine fails
    before anything is written. The config is loaded once and passed down to every stage.

    Args:
        config_path: pipeline YAML, relative to the repository root.
    """
    cfg = load_config(config_path)
    ensure_ready(cfg, roles=ROLES, sources=True, runner=True, config_path=config_path)
    result: dict[str, Any] = {"ingest": ingest_flow(config_path, cfg=cfg)}
    with served(cfg) as endpoints:
        result["filter"] = filter_flow(config_path, endpoints, cfg=cfg)
        result["predictors"] = predictors_flow(config_path, endpoints=endpoints, cfg=cfg)
        result["synthesize"] = synthesize_flow(config_path, endpoints=endpoints, cfg=cfg)
        result["qa"] = qa_flow(config_path, endpoints=endpoints, cfg=cfg)
    result["release"] = release_flow(config_path, cfg=cfg)
    return result


def main(config: Annotated[Path, typer.Argument(help="pipeline YAML")] = DEFAULT_CONFIG) -> None:
    """Run the nightly flow and say where its outputs are."""
    from rich.console import Console
    from rich.table import Table

    result = nightly_flow(config)
    cfg = load_config(config)
    console = Console()
    table = Table(title="per method")
    columns = ("method", "samples", "mean_tokens", "student_share", "similarity_to_student", "pass_rate")
    for column in columns:
        table.add_column(column)
    for row in result["qa"]["summary"]:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    console.print(table)
    console.print(f"release:   {result['release']['folder'] or 'none: no new rows since the newest release'}")
    console.print(f"report:    {result['qa']['report']}")
    console.print(f"warehouse: {cfg.warehouse}  (query it: tessy sql --db {cfg.warehouse} 'SELECT ...')")


def _cell(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "-" if value is None else str(value)


if __name__ == "__main__":
    typer.run(main)
