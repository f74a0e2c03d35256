"""QA tasks: the QA stage's steps (plan, one part's per-trace metrics, finish), so the flow can run the
parts side by side on threads or Ray workers; the report is shown in the UI (plots embedded, the
per-method table rounded)."""

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger

from tasks.artifacts import file_link, table
from tessy.config import PipelineConfig
from tessy.quality.report import markdown_report
from tessy.runtime import Endpoints
from tessy.stages import qa as stage


@task(task_run_name="plan QA of {cfg.name} traces")
def plan_qa(cfg: PipelineConfig, run_id: str) -> stage.QAPlan:
    work = stage.plan(cfg, run_id)
    get_run_logger().info("%d new traces in %d parts", len(work.frame) - len(work.measured), len(work.parts))
    return work


@task(task_run_name="QA part {index}")
def measure_part(cfg: PipelineConfig, part: str, run_code: bool, index: int) -> str:
    logger = get_run_logger()
    return stage.measure_part(cfg, part, run_code, lambda line: logger.info("part %d: %s", index, line))


@task(task_run_name="QA of {cfg.name} traces")
def check_traces(
    cfg: PipelineConfig,
    run_id: str,
    work: stage.QAPlan,
    metrics: list[str],
    endpoints: Endpoints | None = None,
) -> stage.QAOutcome:
    logger = get_run_logger()
    outcome = stage.finish(cfg, run_id, work, metrics, report=logger.info, endpoints=endpoints)
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
    file_link("qa-report-file", outcome.url, f"QA report and plots of {run_id}")
    return outcome
