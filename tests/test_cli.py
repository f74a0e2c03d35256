import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tessy.cli import app
from tests.conftest import REPO

runner = CliRunner()
SAMPLES = [
    str(REPO / "tessy/data/sample_openthoughts_metadata.jsonl"),
    str(REPO / "tessy/data/sample_nemotron.jsonl"),
]


def _json_out(result) -> object:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_ingest_counts_add_up_and_rerun_adds_nothing(db_path: Path):
    first = _json_out(runner.invoke(app, ["ingest", *SAMPLES, "--db", str(db_path), "--json"]))[0]
    assert first["read"] == first["ingested"] + first["duplicates"] + first["quarantined"]
    # The Nemotron sample repeats one OpenThoughts question and ends with a malformed line.
    assert (first["read"], first["ingested"], first["duplicates"], first["quarantined"]) == (14, 12, 1, 1)

    second = _json_out(runner.invoke(app, ["ingest", *SAMPLES, "--db", str(db_path), "--json"]))[0]
    assert (second["ingested"], second["duplicates"]) == (0, 13)

    count = _json_out(
        runner.invoke(app, ["sql", "SELECT count(*) AS n FROM questions", "--db", str(db_path), "--json"])
    )
    assert count == [{"n": 12}]
    extra = _json_out(
        runner.invoke(
            app,
            [
                "sql",
                "SELECT q.source AS first, s.source AS again FROM question_sources s JOIN questions q"
                " USING (question_id)",
                "--db",
                str(db_path),
                "--json",
            ],
        )
    )
    assert len(extra) == 1
    assert extra[0]["first"].endswith("sample_openthoughts_metadata.jsonl")
    assert extra[0]["again"].endswith("sample_nemotron.jsonl")


def test_db_from_environment_and_runs_listing(db_path: Path):
    env = {"TESSY_DB": str(db_path)}
    assert runner.invoke(app, ["ingest", SAMPLES[0]], env=env).exit_code == 0
    runs = _json_out(runner.invoke(app, ["runs", "--json"], env=env))
    assert len(runs) == 1 and runs[0]["kind"] == "ingest" and runs[0]["status"] == "completed"
    table = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM questions"], env=env)
    assert table.exit_code == 0 and "10" in table.stdout


def test_sql_table_shows_brackets_as_written(db_path: Path):
    runner.invoke(app, ["ingest", SAMPLES[0], "--db", str(db_path)])
    query = "SELECT 'dp[i][j] = [bold]x[/bold]' AS \"code[i]\""
    table = runner.invoke(app, ["sql", query, "--db", str(db_path)])
    assert table.exit_code == 0 and "dp[i][j] = [bold]x[/bold]" in table.stdout and "code[i]" in table.stdout
    error = runner.invoke(app, ["sql", "SELECT [i] FROM nowhere_[b]", "--db", str(db_path)])
    assert error.exit_code == 1 and "nowhere_[b]" in error.output


def test_sql_is_read_only(db_path: Path):
    runner.invoke(app, ["ingest", SAMPLES[0], "--db", str(db_path)])
    result = runner.invoke(app, ["sql", "DELETE FROM questions", "--db", str(db_path)])
    assert result.exit_code == 1
    assert "read-only" in result.output.lower() or "read only" in result.output.lower()


@pytest.mark.parametrize(
    "query, refusal",
    [
        ("COPY (SELECT * FROM questions) TO '{out}'", "file system operations"),
        ("SELECT * FROM read_text('/etc/hostname')", "file system operations"),
        ("SELECT 1; DELETE FROM questions", "one SQL statement per query, got 2"),
        ("INSTALL httpfs", "Permission Error"),
        ("SET enable_external_access = true", "Cannot change configuration option"),
    ],
)
def test_sql_reaches_nothing_outside_the_warehouse(db_path: Path, tmp_path: Path, query: str, refusal: str):
    runner.invoke(app, ["ingest", SAMPLES[0], "--db", str(db_path)])
    out = tmp_path / "leak.csv"
    result = runner.invoke(app, ["sql", query.format(out=out), "--db", str(db_path)])
    assert result.exit_code == 1 and refusal in " ".join(result.output.split()), result.output
    assert not out.exists()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("ingest", "sql", "runs"):
        assert command in result.stdout


def test_errors_are_one_line_unless_debug(tmp_path: Path):
    """The installed command: a config mistake is one line and exit 1; --debug shows the traceback."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsynthesis: {span_cap: -1}\nbogus: 1\n")
    tessy = [str(Path(sys.executable).parent / "tessy")]
    plain = subprocess.run([*tessy, "qa", "-c", str(bad)], capture_output=True, text=True)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    lines = plain.stderr.strip().splitlines()
    assert len(lines) == 1 and "synthesis.span_cap: Input should be greater than 0" in lines[0]
    assert "bogus: Extra inputs are not permitted" in lines[0]
    debug = subprocess.run([*tessy, "qa", "-c", str(bad), "--debug"], capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_a_missing_model_dir_is_named(tmp_path: Path):
    from tessy.config import PipelineConfig
    from tessy.runtime import load_model

    cfg = PipelineConfig.model_validate(
        {"name": "x", "models": {"student": {"path": str(tmp_path / "nope")}, "teacher": {"path": "org/t"}}}
    )
    with pytest.raises(FileNotFoundError, match=f"student model dir {tmp_path}/nope not found"):
        _ = load_model(cfg, "student").tokenizer


def test_a_stage_run_too_early_is_one_line_in_the_cli_and_a_failed_flow_run(tmp_path: Path, prefect_harness):
    """QA before synthesis: StageNotReady, said once, the same way by the command and the flow."""
    from flows.qa import qa_flow

    config = tmp_path / "pipeline.yaml"
    models = {"student": {"path": "s"}, "teacher": {"path": "t"}}
    config.write_text(
        json.dumps({"name": "early", "warehouse": str(tmp_path / "wh.duckdb"), "models": models})
    )
    tessy = str(Path(sys.executable).parent / "tessy")
    cli = subprocess.run([tessy, "qa", "-c", str(config)], capture_output=True, text=True)
    assert cli.returncode == 1
    assert cli.stderr.strip() == "error: no traces to check for this config: run synthesize first"
    state = qa_flow(config, return_state=True)
    assert state.is_failed() and "StageNotReady: no traces to check for this config" in state.message
    runs = _json_out(runner.invoke(app, ["runs", "--json", "--db", str(tmp_path / "wh.duckdb")]))
    assert [r["status"] for r in runs] == ["failed", "failed"]
