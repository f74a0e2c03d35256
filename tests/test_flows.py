"""Flows and tasks under the Prefect test harness: ingest end to end, and what the tasks retry."""

import pytest
import yaml

from flows.ingest import ingest_flow
from tessy.config import IngestConfig, SourceConfig
from tessy.stages.ingest import ingest_source
from tests.conftest import REPO
from warehouse.db import open_warehouse


def test_ingest_flow_runs_every_configured_source(tmp_path, prefect_harness):
    db = tmp_path / "wh.duckdb"
    config = {
        "name": "flow-test",
        "warehouse": str(db),
        "sources": [
            {"path": str(REPO / "tessy/data/sample_openthoughts_metadata.jsonl")},
            {"path": str(REPO / "tessy/data/sample_nemotron.jsonl"), "format": "nemotron"},
        ],
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))

    result = ingest_flow(path)

    assert (result["read"], result["ingested"], result["duplicates"], result["quarantined"]) == (14, 12, 1, 1)
    with open_warehouse(db, read_only=True) as wh:
        run = wh.frame("SELECT * FROM runs").to_dicts()
        reasons = wh.frame("SELECT locator, reason FROM quarantine").to_dicts()
    assert len(run) == 1 and run[0]["status"] == "completed" and run[0]["flow_run_id"]
    assert reasons[0]["locator"].endswith("sample_nemotron.jsonl:4")


def test_a_bad_row_is_quarantined_once(tmp_path):
    """The ingest task retries Hub reads, and every night re-reads its sources: neither may add a
    quarantine row that is there already (same source and locator)."""
    source = SourceConfig(path=str(REPO / "tessy/data/sample_nemotron.jsonl"), format="nemotron")
    db = tmp_path / "wh.duckdb"
    first = ingest_source(db, source, IngestConfig(), "run-1")
    retried = ingest_source(db, source, IngestConfig(), "run-1")
    next_night = ingest_source(db, source, IngestConfig(), "run-2")
    assert first.quarantined == retried.quarantined == next_night.quarantined == 1
    with open_warehouse(db, read_only=True) as wh:
        assert wh.scalar("SELECT count(*) FROM quarantine") == 1


def test_publish_is_not_retried_when_it_would_fail_the_same_way(monkeypatch, prefect_harness):
    """Hub errors are retried with backoff; an unknown or tampered release is not."""
    from tasks.release import publish

    calls = []

    def refused(*args, **kwargs):
        calls.append(args)
        raise ValueError("no release named 'nope'")

    monkeypatch.setattr("tessy.stages.release.publish", refused)
    with pytest.raises(ValueError, match="no release named"):
        publish(REPO / "unused.duckdb", "nope", "org/x", True)
    assert len(calls) == 1


def test_synthesize_runs_every_configured_part_at_once(prefect_harness):
    """`runner.parts` parts are submitted together; a pool cap below it would queue some silently
    (here: 16 parts that each wait for all the others would never meet)."""
    import threading

    from prefect import task

    from tasks.runner import task_runner
    from tessy.config import RunnerConfig

    meet = threading.Barrier(16, timeout=60)

    @task
    def part(i: int) -> int:
        meet.wait()
        return i

    with task_runner(RunnerConfig(kind="threads", parts=16)) as runner:
        futures = [runner.submit(part, {"i": i}) for i in range(16)]
        assert sorted(f.result() for f in futures) == list(range(16))
