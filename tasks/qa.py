"""QA task: score this config's traces, store the metrics, write the report and plots."""

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tessy.config import PipelineConfig
from warehouse.qa import QAOutcome, run_qa_stage


@task
def check_traces(cfg: PipelineConfig, run_id: str) -> QAOutcome:
    outcome = run_qa_stage(cfg, run_id)
    create_markdown_artifact(outcome.report.read_text(), key="qa-report", description=f"QA {run_id}")
    create_table_artifact(outcome.summary, key="qa-summary", description=f"QA per method, {run_id}")
    return outcome
