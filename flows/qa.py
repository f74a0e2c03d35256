"""QA: per-trace and per-method metrics into `qa_metrics`, a markdown report and PNG plots."""

from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow

from tasks.qa import check_traces
from tasks.runs import recorded_run, run_name
from tessy.config import load_config
from tessy.preflight import ensure_ready


@flow(name="qa", flow_run_name=run_name, log_prints=True)
def qa_flow(config_path: Path = Path("configs/demo.yaml")) -> dict[str, Any]:
    """Score every trace of this config (token counts, student share, TF-IDF similarity to the
    student, student NLL, code tests in a sandbox) into `qa_metrics`; write the QA report and plots
    under the workdir and show them as artifacts.

    Args:
        config_path: pipeline YAML, relative to the repository root.
    """
    cfg = load_config(config_path)
    ensure_ready(cfg, config_path=config_path)
    with recorded_run(cfg.warehouse, "qa", cfg.public_dict()) as run:
        outcome = check_traces(cfg, run.run_id)
        run.stats = {
            "traces": outcome.n_traces,
            "measured": outcome.n_measured,
            "metrics": outcome.n_metrics,
            "report": str(outcome.report),
        }
    print(f"qa {run.run_id}: report {outcome.report}")
    return {"run_id": run.run_id, "summary": outcome.summary, **run.stats}


def main(config: Annotated[Path, typer.Argument(help="pipeline YAML")] = Path("configs/demo.yaml")) -> None:
    qa_flow(config)


if __name__ == "__main__":
    typer.run(main)
