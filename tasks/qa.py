"""QA task: the QA stage, its report shown in the UI (plots embedded, the per-method table rounded)."""

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger

from tasks.artifacts import file_link, table
from tessy.config import PipelineConfig
from tessy.quality.report import markdown_report
from tessy.runtime import Endpoints
from tessy.stages import qa as stage


@task(task_run_name="QA of {cfg.name} traces")
def check_traces(cfg: PipelineConfig, run_id: str, endpoints: Endpoints | None = None) -> stage.QAOutcome:
    logger = get_run_logger()
    outcome = stage.run(cfg, run_id, report=logger.info, endpoints=endpoints)
    (logger.info if outcome.code_exec.startswith("code ran") else logger.warning)(outcome.code_exec)
    create_markdown_artifact(
        markdown_report(
            outcome.summary,
            outcome.plots,
            run_id=run_id,
            embed=True,
            notes=[outcome.code_exec],
            evaluation=outcome.evaluation,
        ),
        key="qa-report",
        description=f"QA {run_id}",
    )
    table("qa-summary", outcome.summary, f"QA per method, {run_id}")
    file_link("qa-report-file", outcome.report, f"QA report and plots of {run_id} on the worker")
    return outcome
