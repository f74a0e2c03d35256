"""QA: per-trace and per-method metrics into `qa_metrics`, a markdown report and PNG plots."""

from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow

from tasks.qa import check_traces
from tasks.runs import run_name, stage_run
from tessy.config import DEFAULT_CONFIG, PipelineConfig
from tessy.runtime import Endpoints


@flow(name="qa", flow_run_name=run_name, log_prints=True)
def qa_flow(
    config_path: Path = DEFAULT_CONFIG, endpoints: Endpoints | None = None, cfg: PipelineConfig | None = None
) -> dict[str, Any]:
    """Score every trace of this config (token counts, student share, TF-IDF similarity to the
    student, student NLL, code tests in a sandbox) into `qa_metrics`; write the QA report and plots
    under the workdir and show them as artifacts.

    Args:
        config_path: pipeline YAML, relative to the repository root.
        endpoints: servers a parent flow already runs (role -> URLs); the student's score its NLL.
        cfg: the loaded config, when a parent flow passes its own down.
    """
    with stage_run("qa", config_path, cfg) as (cfg, run):
        outcome = check_traces(cfg, run.run_id, endpoints)
        run.stats = {
            "traces": outcome.n_traces,
            "measured": outcome.n_measured,
            "metrics": outcome.n_metrics,
            "report": str(outcome.report),
        }
    return {"run_id": run.run_id, "summary": outcome.summary, **run.stats}


def main(config: Annotated[Path, typer.Argument(help="pipeline YAML")] = DEFAULT_CONFIG) -> None:
    qa_flow(config)


if __name__ == "__main__":
    typer.run(main)
