"""QA: per-trace and per-method metrics into `qa_metrics`, a markdown report and PNG plots."""

from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow

from tasks.qa import check_traces, measure_part, plan_qa
from tasks.runner import map_parts
from tasks.runs import run_name, stage_run
from tessy.config import DEFAULT_CONFIG, PipelineConfig
from tessy.runtime import Endpoints


@flow(name="qa", flow_run_name=run_name, log_prints=True)
def qa_flow(
    config_path: Path = DEFAULT_CONFIG, endpoints: Endpoints | None = None, cfg: PipelineConfig | None = None
) -> dict[str, Any]:
    """Score every trace of this config (token counts, student share, TF-IDF similarity to the
    student, student NLL, code tests in a sandbox) into `qa_metrics`; write the QA report and plots
    under the workdir and show them as artifacts. The new traces' code tests run in `runner.parts`
    parts on the configured runner (threads, or Ray workers with their own sandboxes).

    Args:
        config_path: pipeline YAML, relative to the repository root.
        endpoints: servers a parent flow already runs (role -> URLs); the student's score its NLL.
        cfg: the loaded config, when a parent flow passes its own down.
    """
    with stage_run("qa", config_path, cfg, runner=True) as (cfg, run):
        work = plan_qa(cfg, run.run_id)
        calls = [(cfg, part, work.run_code, i) for i, part in enumerate(work.parts)]
        metrics = map_parts(cfg.runner, "qa-parts", measure_part, calls)
        outcome = check_traces(cfg, run.run_id, work, metrics, endpoints)
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
