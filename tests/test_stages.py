"""The pipeline stages against a real warehouse and the microworld's tiny models (in-process):
filter, predictors registry, synthesis resume, QA, releases and publishing."""

import json
from pathlib import Path
from random import Random

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from tessy.cli import app
from tessy.config import IngestConfig, SourceConfig, load_config
from tessy.errors import ReleaseBlocked, ReleaseNameError, ReleaseTampered
from tessy.filtering.heuristic import HEURISTIC_VERSION, Decision
from tessy.filtering.judges import Judge, heuristic_judge
from tessy.microworld.problems import export_questions, generate_problems
from tessy.microworld.traces import make_trace
from tessy.quality.expectations import row_checks
from tessy.release.export import RELEASE_COLUMNS, ReleaseWriter, export_release, files_hash
from tessy.runtime import load_model
from tessy.stages import filter as filter_stage
from tessy.stages import predictors as predictors_stage
from tessy.stages import qa as qa_stage
from tessy.stages import release as release_stage
from tessy.stages.ingest import ingest_source
from tessy.synthesis.records import Span, Trace
from tessy.synthesis.shards import ShardWriter
from tests.conftest import pipeline_config
from warehouse.db import open_warehouse
from warehouse.labels import label_summary
from warehouse.metrics import trace_frame
from warehouse.releases import diff_releases, unpublished
from warehouse.traces import load_shards, run_summary

runner = CliRunner()


def ingested(tmp_path, models, n_contest=8, n_other=4, **sections):
    """A config over the tiny models with microworld questions ingested and filtered."""
    cfg = load_config(pipeline_config(tmp_path, models, **sections))
    data = export_questions(tmp_path / "mw.jsonl", n_contest, n_other, seed=3)
    ingest_source(cfg.warehouse, SourceConfig(path=str(data)), IngestConfig(), "run-ingest")
    filter_stage.run(cfg, "run-filter", judge=heuristic_judge())
    return cfg


def test_filter_labels_once_and_asks_again_only_when_undecided(tmp_path, tiny_models):
    cfg = ingested(tmp_path, tiny_models)
    with open_warehouse(cfg.warehouse) as wh:
        truth = wh.frame(
            "SELECT q.domain = 'code' AS truth, l.is_contest"
            " FROM questions q JOIN question_labels l USING (question_id)"
        )
    assert truth.height == 12 and (truth["truth"] == truth["is_contest"]).all()
    with open_warehouse(cfg.warehouse) as wh:
        summary = label_summary(wh, HEURISTIC_VERSION)
    assert (summary["contest"], summary["not_contest"], summary["with_domain"]) == (8, 4, 12)
    assert summary["domain_agreement"] == 1.0

    seen = []

    def unsure(texts):
        seen.append(len(texts))
        return [Decision(None, None, "undecided: test", "stub", "v1")] * len(texts)

    judge = Judge("stub", "v1", unsure)
    assert filter_stage.run(cfg, "r1", judge=judge)["undecided"] == 12
    assert filter_stage.run(cfg, "r2", judge=judge)["judged"] == 12  # undecided questions are asked again
    assert filter_stage.run(cfg, "r3", judge=heuristic_judge())["judged"] == 0  # decided ones are not
    assert seen == [12, 12]


def test_predictors_train_once_and_again_when_settings_change(tmp_path, tiny_models):
    small = {
        "questions": 4,
        "max_response_tokens": 48,
        "window_words": 8,
        "windows_per_response": 2,
        "train": {"epochs": 1, "batch_size": 4},
    }
    cfg = ingested(tmp_path, tiny_models, predictors=small)
    first = predictors_stage.run(cfg, "run-1", progress=False)
    assert {r: i["trained"] for r, i in first.items()} == {"student": True, "teacher": True}
    # Scored on pure and on mixed-voice gold windows. (The tiny models' text has no style spans for
    # mixed training windows to be spliced at: test_boundary_data covers the splicing.)
    for role in ("student", "teacher"):
        metrics = first[role]["metrics"]
        assert metrics["mixed"] == 0 and metrics["annotated"] > 0
        for gold in ("ground_truth", "ground_truth_mixed"):
            assert set(metrics[gold]) >= {"style_f1", "boundary_f1", "accuracy"}
    report = predictors_stage.evaluate(cfg, problems=2)
    assert set(report) == {"student", "teacher"} and set(report["student"]) == {"pure", "mixed"}
    again = predictors_stage.run(cfg, "run-2", progress=False)
    assert not any(i["trained"] for i in again.values())
    assert {r: i["predictor_id"] for r, i in again.items()} == {
        r: i["predictor_id"] for r, i in first.items()
    }
    changed = cfg.model_copy(update={"predictors": cfg.predictors.model_copy(update={"window_words": 9})})
    assert all(i["trained"] for i in predictors_stage.run(changed, "run-3", progress=False).values())
    with open_warehouse(cfg.warehouse) as wh:
        assert wh.scalar("SELECT count(*) FROM predictors") == 4


# Baselines on two questions a night; every trace fails after its one attempt: its thinking goes over
# 48 tokens, or its answer is empty or longer than one token.
TWO_QUESTIONS_A_NIGHT = {
    "methods": ["student-only", "teacher-only"],
    "max_thinking_tokens": 48,
    "max_answer_tokens": 1,
    "max_attempts": 1,
    "limit": 2,
    "concurrency": 2,
}


def test_synthesize_cli_runs_baselines_and_a_rerun_adds_nothing(tmp_path, tiny_models):
    cfg = ingested(tmp_path, tiny_models, synthesis={**TWO_QUESTIONS_A_NIGHT, "retry_failed": 0})
    path = tmp_path / "pipeline.yaml"
    first = runner.invoke(app, ["synthesize", "-c", str(path), "--json"])
    assert first.exit_code == 0, first.output
    stats = json.loads(first.stdout.strip().splitlines()[-1])[0]
    assert stats["jobs"] == 4 and stats["traces"] == 4
    second = json.loads(
        runner.invoke(app, ["synthesize", "-c", str(path), "--json"]).stdout.strip().splitlines()[-1]
    )
    assert second[0]["jobs"] == 4 and second[0]["traces"] == 4  # the next two questions, not the same ones
    with open_warehouse(cfg.warehouse) as wh:
        pairs = wh.frame("SELECT question_id, method, count(*) AS n FROM traces GROUP BY ALL")
    assert pairs.height == 8 and pairs["n"].max() == 1
    assert not list((cfg.workdir / "shards").glob("*.parquet"))  # loaded shards are moved to loaded/
    assert not list((cfg.workdir / "plans").iterdir())  # each run's plan is deleted once loaded


def test_failed_traces_are_tried_again_on_later_nights(tmp_path, tiny_models):
    cfg = ingested(tmp_path, tiny_models, synthesis={**TWO_QUESTIONS_A_NIGHT, "retry_failed": 1})
    path = str(tmp_path / "pipeline.yaml")

    def night() -> dict:
        result = runner.invoke(app, ["synthesize", "-c", path, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout.strip().splitlines()[-1])[0]

    def traces() -> list[tuple]:
        with open_warehouse(cfg.warehouse) as wh:
            return wh.frame("SELECT trace_id, status, nights, run_id FROM traces ORDER BY 1").rows()

    first = night()
    failed = traces()
    assert first["failed"] == 4 and {t[1] for t in failed} == {"failed"}
    second = night()  # the same four, tried once more, replacing their rows
    assert (second["jobs"], second["traces"]) == (4, 4)
    retried = traces()
    assert [t[0] for t in retried] == [t[0] for t in failed] and {t[2] for t in retried} == {2}
    assert {t[3] for t in retried} != {t[3] for t in failed}
    with open_warehouse(cfg.warehouse) as wh:  # the spans are the new attempt's, not both
        assert wh.scalar("SELECT count(*) FROM spans s ANTI JOIN traces t USING (trace_id)") == 0
    third = night()  # retries used up: the next questions
    assert third["jobs"] == 4 and len(traces()) == 8


def test_count_tokens_is_the_tokenizers_own_count(tmp_path, tiny_models):
    cfg = load_config(pipeline_config(tmp_path, tiny_models))
    text = "<think>\nWe need the gcd.\n```python\nprint(a  +  b)\n```\n</think>\n\nünï 漢字 <|im_end|>"
    for role in ("student", "teacher"):
        model = load_model(cfg, role)
        assert model.count_tokens(text) == len(model.tokenizer(text, add_special_tokens=False).input_ids) > 9


def write_traces(cfg, methods=("tessy", "student-only"), n_questions=4):
    """Well-formed traces (microworld reference reasoning) for the first contest questions."""
    tokenizer = load_model(cfg, "student").tokenizer

    def count(text):
        return len(tokenizer(text, add_special_tokens=False).input_ids)

    with open_warehouse(cfg.warehouse) as wh:
        questions = wh.frame(
            "SELECT question_id, text FROM questions WHERE domain = 'code' ORDER BY question_id LIMIT ?",
            [n_questions],
        ).rows()
    problems = {p.statement.strip(): p for p in generate_problems(200, seed=3, split="eval")}
    writer = ShardWriter(cfg.workdir / "shards", shard_size=3)
    for qid, text in questions:
        problem = problems[text]
        for method in methods:
            trace = make_trace(
                problem, "student" if method == "student-only" else "teacher", Random(qid + method)
            )
            spans = [
                Span("teacher" if method == "tessy" else "student", trace.thinking, count(trace.thinking)),
                Span("student", trace.answer, count(trace.answer)),
            ]
            full = f"<think>\n{trace.thinking}\n</think>\n\n{trace.answer}"
            writer.add(
                Trace(
                    trace_id=f"{qid[:16]}-{method}",
                    question_id=qid,
                    method=method,
                    student_model="student",
                    teacher_model="teacher",
                    predictor_ids="p-s,p-t" if method == "tessy" else "",
                    text=full,
                    answer=trace.answer,
                    spans=spans,
                    n_tokens=count(full),
                    n_tokens_teacher=spans[0].n_tokens if method == "tessy" else 0,
                    n_tokens_student=spans[1].n_tokens + (0 if method == "tessy" else spans[0].n_tokens),
                    n_switches=1,
                    n_wasted_tokens=0,
                    n_generated_tokens=count(full),
                    n_failed_tokens=0,
                    status="ok",
                    error=None,
                    attempts=1,
                )
            )
    writer.flush()
    with open_warehouse(cfg.warehouse) as wh:
        load_shards(wh, writer.folder, "run-synth")


class FakeHub:
    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs["repo_id"]))
        self.uploaded = sorted(kwargs["allow_patterns"])
        return type("Commit", (), {"oid": "abc123"})()

    def create_tag(self, repo_id, *, tag, revision, **kwargs):
        self.calls.append(("create_tag", tag, revision))


def test_qa_then_immutable_releases_diff_and_publish(tmp_path, tiny_models):
    cfg = ingested(
        tmp_path,
        tiny_models,
        release={"methods": ["tessy", "student-only"], "hub_repo": "org/set"},
        qa={"student_nll": False},
    )
    with pytest.raises(ReleaseBlocked, match="passed QA"):
        release_stage.create(cfg, "too-early", "r0")
    write_traces(cfg)
    with open_warehouse(cfg.warehouse) as wh:
        made = run_summary(wh, "run-synth")
    assert [(r["method"], r["traces"], r["failed"]) for r in made] == [
        ("student-only", 4, 0),
        ("tessy", 4, 0),
    ]
    assert 0 < made[1]["teacher_share"] < 1 and made[0]["teacher_share"] == 0
    assert all(type(r["tokens"]) is int and type(r["teacher_share"]) is float for r in made)  # plain numbers
    outcome = qa_stage.run(cfg, "qa-1")
    with open_warehouse(cfg.warehouse) as wh:  # QA reads the summary of completed qa runs
        wh.con.execute(
            "INSERT INTO runs (run_id, kind, started_at, status) VALUES ('qa-1', 'qa', now(), 'completed')"
        )
    methods = {row["method"]: row for row in outcome.summary}
    assert set(methods) == {"tessy", "student-only"}
    # A second night measures no trace again, and sums up the same.
    again = qa_stage.run(cfg, "qa-2")
    assert (outcome.n_measured, again.n_measured) == (8, 0)
    # The same up to the last bit: DuckDB sums in parallel, in no fixed order.
    same = [{k: pytest.approx(v) if type(v) is float else v for k, v in r.items()} for r in outcome.summary]
    assert again.summary == same
    with open_warehouse(cfg.warehouse) as wh:
        per_trace = wh.frame(
            "SELECT run_id, count(*) AS n FROM qa_metrics WHERE subject_id NOT LIKE '%/%' GROUP BY 1"
        )
    assert per_trace.rows() == [("qa-1", per_trace["n"][0])]
    assert methods["student-only"]["similarity_to_student"] is None or methods["student-only"]["samples"] == 4
    assert outcome.report.exists() and all(p.exists() for p in outcome.plots)

    for bad in ("../x", "/abs", "a/b", ".hidden", "Upper", "a..b", ""):
        with pytest.raises(ValueError, match="invalid release name"):
            release_stage.create(cfg, bad, "rel-run")
    assert not (cfg.workdir / "x").exists() and not Path("/abs").exists()
    first = release_stage.create(cfg, "r1", "rel-run")
    assert first.n_rows == 8 and first.gate.success and first.parent_release_id is None
    with pytest.raises(ReleaseNameError, match="immutable"):
        release_stage.create(cfg, "r1", "rel-run")
    second = release_stage.create(cfg, "r2", "rel-run")
    assert second.content_hash == first.content_hash and second.parent_release_id == first.release_id
    exported = pl.read_parquet(first.folder / "data" / "default" / "*.parquet")
    assert exported.height == 8 and "messages" in exported.columns and "run_id" not in exported.columns

    with open_warehouse(cfg.warehouse) as wh:
        diff = diff_releases(wh, "r1", "r2")
    assert diff["same_content"] and sum(r["kept"] for r in diff["by_method"]) == 8

    # A nightly (unnamed) release with the same rows as the newest one is not made.
    assert release_stage.create(cfg, "r3", "rel-run", if_changed=True) is None
    assert not (cfg.workdir / "releases" / "r3").exists()

    hub = FakeHub()
    (second.folder / "data/default/stray.parquet").write_bytes(b"left over")  # not the release's: not sent
    result = release_stage.publish(cfg.warehouse, "r2", "org/set", client=hub)
    assert hub.calls == [
        ("create_repo", "org/set"),
        ("upload_folder", "org/set"),
        ("create_tag", "r2", "abc123"),
    ]
    assert result.revision == "abc123" and "data/default/stray.parquet" not in hub.uploaded
    with open_warehouse(cfg.warehouse) as wh:
        assert wh.frame("SELECT hub_repo, hub_revision, tag FROM release_publications").rows() == [
            ("org/set", "abc123", "r2")
        ]
        assert unpublished(wh, "org/set") == ["r1"]  # the next night publishes it

    shard = next((first.folder / "data/default").glob("train-*.parquet"))
    tampered = pl.read_parquet(shard).with_columns(text=pl.lit("something else"))
    tampered.write_parquet(shard)
    with pytest.raises(ReleaseTampered, match="not published"):
        release_stage.publish(cfg.warehouse, "r1", "org/set", client=FakeHub())

    # A later night with new predictors answers the same questions again: the release holds the
    # newest answer of each question and method, once (both would fail the gate).
    with open_warehouse(cfg.warehouse) as wh:
        wh.con.execute(
            "INSERT INTO traces SELECT * REPLACE (trace_id || '-new' AS trace_id, 'run-synth-2' AS run_id)"
            " FROM traces WHERE method = 'tessy'"
        )
        wh.con.execute(
            "INSERT INTO qa_metrics SELECT subject_id || '-new', metric, value, run_id FROM qa_metrics"
            " WHERE subject_id IN (SELECT trace_id FROM traces WHERE method = 'tessy')"
        )
    newer = release_stage.create(cfg, "r4", "rel-run")
    assert newer.gate.success and newer.n_rows == 8
    shipped = pl.read_parquet(newer.folder / "data" / "default" / "*.parquet")
    assert sorted(shipped.filter(pl.col("method") == "tessy")["trace_id"].str.slice(-4)) == ["-new"] * 4


@pytest.mark.parametrize("storage", ["elsewhere", "work"])
def test_a_storage_folder_keeps_the_qa_report_and_the_release_and_the_workdir_as_storage_loses_none(
    tmp_path, tiny_models, storage
):
    """A storage folder on this machine gets copies of QA's report and the release, which publish
    from there; named as the workdir itself (where the stages write first), it keeps them whole."""
    folder = tmp_path / storage
    folder.mkdir()
    cfg = ingested(tmp_path, tiny_models, storage=str(folder), qa={"student_nll": False, "run_code": False})
    write_traces(cfg)
    qa = qa_stage.run(cfg, "qa-1")
    made = release_stage.create(cfg, "r1", "rel-run")
    assert Path(qa.url, "report.md").is_file() and Path(made.url, "README.md").is_file()
    assert Path(made.url).with_name("r1.validation.json").is_file()
    assert (made.url == str(made.folder)) == (storage == "work")
    assert release_stage.publish(cfg.warehouse, "r1", "org/set", client=FakeHub()).revision == "abc123"


def test_a_release_killed_half_way_then_rerun_gives_one_consistent_release(
    tmp_path, tiny_models, monkeypatch
):
    cfg = ingested(tmp_path, tiny_models, qa={"student_nll": False, "run_code": False})
    write_traces(cfg)
    qa_stage.run(cfg, "qa-1")

    def nightly() -> object:
        return release_stage.run(cfg, "rel-run")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies here: data exported, card and rows not written

    monkeypatch.setattr("tessy.stages.release.write_card", killed)
    with pytest.raises(KeyboardInterrupt):
        nightly()
    monkeypatch.undo()
    made = nightly()
    assert nightly() is None  # and the night after, with nothing new, makes none
    with open_warehouse(cfg.warehouse) as wh:
        rows = wh.frame("SELECT name, content_hash, manifest_json FROM releases").rows()
        items = wh.scalar("SELECT count(*) FROM release_items")
    assert len(rows) == 1 and rows[0][0] == made.name and items == made.n_rows
    manifest = json.loads(rows[0][2])
    assert files_hash(made.folder, manifest["files"]) == rows[0][1] == made.content_hash
    assert (made.folder / "README.md").exists()


def test_a_release_streams_out_in_batches_the_rows_of_one_frame(tmp_path, tiny_models, monkeypatch):
    cfg = ingested(
        tmp_path,
        tiny_models,
        release={"methods": ["tessy", "student-only"], "max_rows_per_shard": 3},
        qa={"student_nll": False, "run_code": False},
    )
    write_traces(cfg)
    qa_stage.run(cfg, "qa-1")
    batches = []

    def checks(rows):
        batches.append(rows.height)
        return row_checks(rows)

    monkeypatch.setattr("tessy.stages.release.BATCH_ROWS", 2)
    monkeypatch.setattr("tessy.stages.release.row_checks", checks)
    made = release_stage.create(cfg, "r1", "rel-run")
    assert made.gate.success and batches == [2, 2, 2, 2]
    shards = [pl.read_parquet(f) for f in sorted((made.folder / "data" / "default").glob("*.parquet"))]
    assert [s.height for s in shards] == [3, 3, 2]  # batches straddle shards
    # The rows and hash are those of one frame holding the whole release.
    with open_warehouse(cfg.warehouse) as wh:
        whole = trace_frame(wh, cfg, cfg.release.methods).select(RELEASE_COLUMNS)
    assert pl.concat(shards).drop("messages").equals(whole)
    assert export_release(whole, tmp_path / "whole").content_hash == made.content_hash
    # A batch out of order is refused, and the half-written export is removed.
    writer = ReleaseWriter(tmp_path / "bad", 2)
    writer.write(whole.slice(1, 1))
    with pytest.raises(ValueError, match="ascending trace_id order"):
        writer.write(whole.slice(0, 1))
    writer.discard()
    assert not (tmp_path / "bad").exists()


def test_releases_are_gated_on_teacher_only_and_keep_only_solved_traces(tmp_path, tiny_models):
    # The answers are the microworld's own code (and a wrong one written here): run them even where
    # no sandbox is.
    cfg = ingested(tmp_path, tiny_models, qa={"student_nll": False, "unsafe_exec": True})
    write_traces(cfg, methods=("tessy", "teacher-only"))
    qa_stage.run(cfg, "qa-1")
    good = release_stage.create(cfg, "good", "rel-run")
    assert good.n_rows == 4 and good.gate.success and good.dropped == {}  # teacher-only is not released
    solved = next(o for o in good.gate.outcomes if o.name == "solved_vs_teacher_only")
    assert solved.detail == "tessy solved 1.00 >= 0.9 x teacher-only 1.00 over 4 questions"

    with open_warehouse(cfg.warehouse) as wh:  # three TESSY answers now print the wrong thing
        wrong = "```python\nprint('wrong')\n```"
        wh.con.execute(
            "UPDATE traces SET answer = ?, text = split_part(text, '</think>', 1) || ? WHERE trace_id IN"
            " (SELECT trace_id FROM traces WHERE method = 'tessy' ORDER BY trace_id LIMIT 3)",
            [wrong, f"</think>\n\n{wrong}"],
        )
    # QA reuses per-trace metrics measured with the same settings (the trace ids did not change), so
    # measure again with other ones.
    remeasure = cfg.model_copy(update={"qa": cfg.qa.model_copy(update={"timeout_s": 6.0})})
    assert qa_stage.run(remeasure, "qa-2").n_measured == 8
    with pytest.raises(
        ReleaseBlocked,
        match=r"solved_vs_teacher_only \(tessy solved 0\.25 < 0\.9 x teacher-only 1\.00 over 4 questions\)",
    ):
        release_stage.create(cfg, "bad", "rel-run")
    assert not (cfg.workdir / "releases" / "bad" / "README.md").exists()

    # Rejection sampling keeps the one solved TESSY trace; a lower bar lets it through the gate.
    solved_only = cfg.model_copy(
        update={"release": cfg.release.model_copy(update={"require_solved": True, "min_solved_ratio": 0.2})}
    )
    kept = release_stage.create(solved_only, "solved", "rel-run")
    assert kept.n_rows == 1 and kept.dropped == {"unsolved": 3, "no_tests": 0, "not_run": 0}
    with open_warehouse(cfg.warehouse) as wh:
        manifest = json.loads(wh.scalar("SELECT manifest_json FROM releases WHERE name = 'solved'"))
    assert manifest["dropped"] == kept.dropped


def test_qa_scores_the_nll_on_the_students_servers_when_they_run(tmp_path, tiny_models):
    def cfg(nll_engine: str, engine: str = "vllm"):
        student = {"path": str(tiny_models["student"]), "engine": engine, "endpoints": ["http://s:8000"]}
        path = pipeline_config(tmp_path, tiny_models, qa={"nll_engine": nll_engine})
        config = yaml.safe_load(path.read_text())
        config["models"]["student"] = student
        path.write_text(yaml.safe_dump(config))
        return load_config(path)

    running = {"student": ["http://s:8000"], "teacher": ["http://t:8000"]}
    assert qa_stage.nll_on_server(cfg("auto"), running)  # a parent flow's servers
    assert not qa_stage.nll_on_server(cfg("auto"), None)  # none running: transformers
    assert not qa_stage.nll_on_server(cfg("auto"), {"teacher": ["http://t:8000"]})
    assert qa_stage.nll_on_server(cfg("auto", engine="openai"), None)  # configured endpoints
    assert qa_stage.nll_on_server(cfg("server"), None)  # started for QA
    assert not qa_stage.nll_on_server(cfg("hf"), running)
    with pytest.raises(ValueError, match="no server"):
        qa_stage.nll_on_server(cfg("server", engine="hf"), None)


def test_the_warehouse_plans_with_the_trace_ids_this_process_computes(tmp_path, tiny_models):
    from tessy.hashing import sha256_text
    from tessy.stages import synthesize as synthesize_stage
    from tessy.synthesis.identity import recipe, trace_id

    cfg = ingested(tmp_path, tiny_models)
    made_by = recipe(cfg, "tessy", ["p-teacher", "p-student"])
    assert sha256_text(made_by.prefix + "ab12" + made_by.suffix) == trace_id(
        cfg, "ab12", "tessy", ["p-student", "p-teacher"]
    )
    work = synthesize_stage.plan(cfg, ["teacher-only", "student-only"], limit=3)
    assert [j.method for j in work.jobs] == ["teacher-only", "student-only"] * 3
    assert [j.trace_id for j in work.jobs] == [trace_id(cfg, j.question_id, j.method, []) for j in work.jobs]
    assert [j.recipe for j in work.jobs] == [recipe(cfg, j.method, []).recipe_id for j in work.jobs]
    questions = [j.question_id for j in work.jobs[::2]]
    assert questions == sorted(questions) and len(set(questions)) == 3
    assert len(synthesize_stage.plan(cfg, ["teacher-only"]).jobs) == 8  # every contest question


def test_a_qa_part_refuses_a_machine_that_runs_code_otherwise(tmp_path, tiny_models):
    """The QA key records whether code ran: a part on a worker without the planner's sandbox (here:
    code off where the plan ran it) fails instead of storing metrics under the wrong key."""
    cfg = ingested(tmp_path, tiny_models, qa={"student_nll": False, "run_code": False})
    write_traces(cfg, n_questions=1)
    work = qa_stage.plan(cfg, "qa-1")
    assert not work.run_code and len(work.parts) == 1
    with pytest.raises(RuntimeError, match="code tests off .* unlike the planner's machine"):
        qa_stage.measure_part(cfg, work.parts[0], run_code=True)
    assert qa_stage.measure_part(cfg, work.parts[0], run_code=False).endswith("/metrics/part-0000.parquet")


def test_a_qa_night_reads_only_new_traces_and_sums_up_all(tmp_path, tiny_models):
    from tessy.quality.metrics import method_metrics, per_trace_sums
    from warehouse.metrics import traces_to_measure

    cfg = ingested(tmp_path, tiny_models, qa={"student_nll": False, "run_code": False})
    write_traces(cfg, n_questions=2)
    first = qa_stage.run(cfg, "qa-1")
    write_traces(cfg, n_questions=4)  # two more questions; the first two's traces are loaded already
    key = qa_stage.settings_key(cfg)
    with open_warehouse(cfg.warehouse) as wh:
        frame, measured = traces_to_measure(wh, cfg, key)
    # The new traces, and no reference: each new TESSY trace's student-only one is new as well.
    assert frame.height == 4 and measured == set()
    second = qa_stage.run(cfg, "qa-2")
    assert (first.n_measured, second.n_measured) == (4, 4)
    assert {r["method"]: r["samples"] for r in second.summary} == {"student-only": 4, "tessy": 4}
    with open_warehouse(cfg.warehouse) as wh:
        similarity = wh.frame(
            "SELECT subject_id, run_id FROM qa_metrics WHERE metric = 'similarity_to_student' ORDER BY 2"
        )
    assert similarity["run_id"].to_list() == ["qa-1"] * 2 + ["qa-2"] * 2  # each TESSY trace, once
    tessy = next(r for r in second.summary if r["method"] == "tessy")
    assert 0 < tessy["similarity_to_student"] <= 1
    # The means come from running sums; summed up again from every stored metric, they are the same
    # up to the order of the float additions (1e-16 apart on some data).
    with open_warehouse(cfg.warehouse) as wh:
        stored = wh.frame("SELECT subject_id, metric, value FROM qa_metrics WHERE subject_id LIKE 'qa-2/%'")
        per_trace = "(SELECT * FROM qa_metrics WHERE subject_id NOT LIKE '%/%')"
        again = method_metrics(wh.con, "qa-2", traces="traces", sums=per_trace_sums(per_trace, "traces"))
    assert_frame_equal(stored.sort("subject_id", "metric"), again.sort("subject_id", "metric"), rel_tol=1e-12)


def test_a_failed_trace_is_measured_once_and_again_when_a_new_attempt_replaces_it(tmp_path, tiny_models):
    cfg = ingested(tmp_path, tiny_models, qa={"student_nll": False, "run_code": False})
    write_traces(cfg, methods=("student-only",), n_questions=2)
    with open_warehouse(cfg.warehouse) as wh:
        wh.con.execute("UPDATE traces SET status = 'failed'")  # as a night whose attempts failed left them
    assert qa_stage.run(cfg, "qa-1").n_measured == 2  # a failed trace has no per-trace metrics
    assert qa_stage.run(cfg, "qa-2").n_measured == 0  # and is not read again
    write_traces(cfg, methods=("student-only",), n_questions=2)  # a later night's attempts finish
    assert qa_stage.run(cfg, "qa-3").n_measured == 2
    with open_warehouse(cfg.warehouse) as wh:
        measured = wh.frame("SELECT DISTINCT subject_id, run_id FROM qa_metrics WHERE metric = 'n_tokens'")
    assert measured.height == 2 and set(measured["run_id"]) == {"qa-3"}


def test_a_new_trace_is_compared_with_a_reference_measured_on_an_earlier_night(tmp_path, tiny_models):
    from warehouse.metrics import traces_to_measure

    cfg = ingested(tmp_path, tiny_models, qa={"student_nll": False, "run_code": False})
    write_traces(cfg, methods=("student-only",), n_questions=2)
    qa_stage.run(cfg, "qa-1")
    write_traces(cfg, methods=("tessy",), n_questions=2)
    with open_warehouse(cfg.warehouse) as wh:
        frame, measured = traces_to_measure(wh, cfg, qa_stage.settings_key(cfg))
    references = set(frame.filter(method="student-only")["trace_id"])
    assert frame.height == 4 and measured == references and len(references) == 2
    second = qa_stage.run(cfg, "qa-2")
    assert second.n_measured == 2
    tessy = next(r for r in second.summary if r["method"] == "tessy")
    assert 0 < tessy["similarity_to_student"] <= 1
