"""The evaluate stage: the benchmark format and its errors, pass@1 through an engine and the sandbox,
the TRL fine-tune of the tiny student, and the stage over a real warehouse (in-process engine)."""

import asyncio
import json
import math
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from tessy.cli import app
from tessy.config import EvaluateGateConfig, load_config
from tessy.engines.base import Completion, Sampling
from tessy.errors import ReleaseBlocked, ReleaseNameError, StageNotReady
from tessy.evaluation.benchmark import BenchmarkError, BenchProblem, load_benchmark
from tessy.evaluation.passk import interval, pass_at_1, score
from tessy.evaluation.sft import DivergedError, SFTSettings, finetune, sft_rows
from tessy.microworld.problems import export_benchmark, generate_problems
from tessy.quality.traces import Tests
from tessy.runtime import load_model
from tessy.stages import evaluate as stage
from tessy.stages import qa as qa_stage
from tessy.stages import release as release_stage
from tessy.templates import QWEN3
from tests.test_stages import FakeHub, ingested, write_traces
from warehouse.db import open_warehouse, recorded_run
from warehouse.evaluations import Evaluation

runner = CliRunner()
ECHO_SUM = "```python\nimport sys\nprint(sum(map(int, sys.stdin.read().split()[1:])))\n```"


def _row(pid, tests=None, **extra):
    return json.dumps({"id": pid, "question": f"q {pid}", "tests": tests, **extra})


def test_benchmark_rows_load_and_bad_rows_name_their_line(tmp_path):
    good = {"inputs": ["2\n1 2\n"], "outputs": ["3\n"]}
    path = tmp_path / "bench.jsonl"
    path.write_text("\n".join([_row("a", good, group="sum"), _row("b", json.dumps(good))]) + "\n")
    problems = load_benchmark(path)
    assert [(p.id, p.group, p.tests.outputs) for p in problems] == [("a", "sum", ["3\n"]), ("b", "", ["3\n"])]
    assert len(load_benchmark(path, limit=1)) == 1
    cases = {
        "no tests": (_row("a", good) + "\n" + _row("c"), "line 2: problem 'c' has no tests"),
        "twice": (_row("a", good) + "\n" + _row("a", good), "line 2: problem id 'a' appears twice"),
        "not json": ("{oops", "line 1: not a problem row"),
        "empty": ("\n", "holds no problems"),
    }
    for text, message in cases.values():
        path.write_text(text)
        with pytest.raises(BenchmarkError, match=message):
            load_benchmark(path)
    with pytest.raises(BenchmarkError, match="not found"):
        load_benchmark(tmp_path / "missing.jsonl")


def test_score_and_interval():
    problems = [BenchProblem(p, p, Tests(["x"], ["y"]), g) for p, g in (("a", "f"), ("b", "f"), ("c", "g"))]
    s = score(problems, {"a": [True, True], "b": [False, True], "c": [False, False]})
    assert (s.pass_at_1, s.n, s.k) == (0.5, 3, 2)
    assert s.per_group == {"f": 0.75, "g": 0.0}
    mean, half = interval([1.0, 0.5, 0.0])
    assert mean == 0.5 and half == pytest.approx(1.96 * 0.5 / math.sqrt(3))
    assert math.isnan(interval([1.0])[1])


def test_the_gain_over_the_base_has_a_paired_interval():
    def row(method, seed, per_problem):
        mean = sum(per_problem.values()) / len(per_problem)
        return Evaluation(
            "e", "r", method, "m", "h", seed, "b", "bh", "s", 4, 4, 1, mean, None, per_problem=per_problem
        )

    base = row("base", 0, {"a": 0.0, "b": 1.0, "c": 0.0, "d": 1.0})
    seeds = [
        row("tessy", 0, {"a": 1.0, "b": 1.0, "c": 0.0, "d": 1.0}),
        row("tessy", 1, dict.fromkeys("abcd", 1.0)),
    ]
    summary = stage.summarize([base, *seeds], 2)
    # Per problem, the seeds' mean minus the base: 1, 0, 0.5, 0.
    mean, half = interval([1, 0, 0.5, 0])
    assert summary["gain"]["tessy"] == pytest.approx({"mean": mean, "ci95": half})
    assert summary["tessy"] - summary["base"] == pytest.approx(0.375)
    # A base measured before per-problem results were kept gives no paired gain.
    assert stage.summarize([replace(base, per_problem={}), *seeds], 2)["gain"] == {}


class ScriptedEngine:
    """Answers every prompt with the response its question maps to."""

    def __init__(self, responses):
        self.responses = responses

    async def complete(self, prompt, params, *, until=None):
        question = prompt.split("<|im_start|>user\n")[1].split("<|im_end|>")[0]
        text = self.responses[question]
        return Completion(text=text, n_tokens=len(text.split()), finish_reason="stop", endpoint="scripted")


def test_pass_at_1_runs_each_answer_against_its_tests():
    tests = Tests(["2\n1 2\n", "3\n1 1 1\n"], ["3\n", "3\n"])
    problems = [BenchProblem(q, q, tests) for q in ("right", "wrong", "unclosed")]
    engine = ScriptedEngine(
        {
            "right": f"ok\n</think>\n\n{ECHO_SUM}",
            "wrong": "ok\n</think>\n\n```python\nprint(0)\n```",
            "unclosed": f"still thinking {ECHO_SUM}",  # no answer: the thinking never ended
        }
    )
    s = asyncio.run(
        pass_at_1(engine, QWEN3, problems, k=2, sampling=Sampling(max_tokens=64), allow_unsafe=True)
    )
    assert s.per_problem == {"right": 1.0, "wrong": 0.0, "unclosed": 0.0}
    assert s.closed == pytest.approx(4 / 6)


def test_a_model_echoing_the_reference_solutions_scores_one_and_a_silent_one_zero(tmp_path):
    problems = load_benchmark(export_benchmark(tmp_path / "bench.jsonl", 6))
    solutions = {p.statement: p.solution for p in generate_problems(6, 1, "eval")}
    echo = ScriptedEngine({q: f"ok\n</think>\n\n```python\n{code}```" for q, code in solutions.items()})
    silent = ScriptedEngine({q: "ok\n</think>\n\n" for q in solutions})
    sampling = Sampling(max_tokens=64)
    for engine, expected in ((echo, 1.0), (silent, 0.0)):
        s = asyncio.run(pass_at_1(engine, QWEN3, problems, k=1, sampling=sampling, allow_unsafe=True))
        assert s.pass_at_1 == expected and set(s.per_group.values()) == {expected}


def test_finetune_trains_on_the_response_and_refuses_a_diverged_run(tmp_path, tiny_models):
    student = tiny_models["student"]
    family = QWEN3
    rows = sft_rows(family, [("Add two numbers.", f"<think>\nSum them.\n</think>\n\n{ECHO_SUM}")] * 8)
    assert rows[0]["prompt"].endswith("<think>\n") and rows[0]["completion"].startswith("Sum them.")
    settings = SFTSettings(epochs=2, batch_size=4, lr=1e-3, max_length=256)
    result = finetune(student, rows, tmp_path / "ft", settings, seed=0)
    assert result.steps == 4 and result.final_loss < result.first_loss
    before, after = (load_file(path / "model.safetensors") for path in (student, tmp_path / "ft"))
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)
    assert (tmp_path / "ft" / "model.safetensors").exists() and not (tmp_path / "ft.partial").exists()
    # LoRA is merged into the weights: the folder is a plain model of the base's shape, served as is.
    lora = finetune(student, rows, tmp_path / "lora", replace(settings, mode="lora", lora_r=4), seed=0)
    merged = load_file(lora.path / "model.safetensors")
    assert merged.keys() == before.keys() and any(not torch.equal(before[k], merged[k]) for k in before)
    assert not list(lora.path.glob("adapter_*"))
    with pytest.raises(DivergedError, match="lower evaluate.finetune.lr"):
        finetune(student, rows, tmp_path / "nan", SFTSettings(epochs=1, batch_size=4, lr=1e30), seed=0)
    assert not (tmp_path / "nan").exists() and not (tmp_path / "nan.partial").exists()
    with pytest.raises(FileNotFoundError, match="base model dir"):
        finetune(tmp_path / "nowhere", rows, tmp_path / "x", settings, seed=0)


def test_evaluate_stage_fine_tunes_each_method_and_reuses_the_base(tmp_path, tiny_models):
    bench = export_benchmark(tmp_path / "bench.jsonl", 4)
    evaluate = {
        "benchmark": str(bench),
        "methods": ["tessy", "teacher-only"],
        "max_tokens": 96,
        "finetune": {"epochs": 1, "batch_size": 4, "max_length": 512},
    }
    cfg = ingested(
        tmp_path, tiny_models, evaluate=evaluate, qa={"unsafe_exec": True}, release={"min_solved_ratio": 0}
    )
    write_traces(cfg, methods=("tessy",), n_questions=4)
    with pytest.raises(StageNotReady, match="no finished teacher-only traces"):
        stage.run(cfg, "run-eval-0")
    write_traces(cfg, methods=("teacher-only",), n_questions=4)
    outcome = stage.run(cfg, "run-eval-1")
    assert [(r.method, r.n_train, r.n) for r in outcome.rows] == [
        ("base", 0, 4),
        ("tessy", 4, 4),
        ("teacher-only", 4, 4),
    ]
    assert set(outcome.summary) == {"base", "tessy", "teacher-only", "ci95", "gain", "seeds"}
    assert set(outcome.summary["gain"]) == {"tessy", "teacher-only"}
    assert outcome.summary["gain"]["tessy"]["mean"] == pytest.approx(
        outcome.summary["tessy"] - outcome.summary["base"]
    )
    assert all(
        0 <= r.pass_at_1 <= 1 and r.train_steps == (None if r.method == "base" else 1) for r in outcome.rows
    )
    # The base is measured once; a second run fine-tunes again (a new run) but reuses its score, and
    # a run repeated (the same id: a retried task) replaces its rows instead of adding to them.
    tessy_only = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={"methods": ["tessy"]})})
    for _ in range(2):
        outcome = stage.run(tessy_only, "run-eval-2")
        assert outcome.rows[0].run_id == "run-eval-1" and outcome.rows[0].per_problem
        assert all(0 <= r.closed <= 1 for r in outcome.rows)
        assert set(outcome.summary["gain"]) == {"tessy"}
    with open_warehouse(cfg.warehouse, read_only=True) as wh:
        stored = wh.frame("SELECT run_id, method FROM evaluations ORDER BY created_at").rows()
    assert stored == [
        ("run-eval-1", "base"),
        ("run-eval-1", "tessy"),
        ("run-eval-1", "teacher-only"),
        ("run-eval-2", "tessy"),
    ]
    assert load_model(cfg, "student").config.engine == "hf"
    # A release's evaluation trains on the questions it answers and records the release.
    qa_stage.run(cfg, "qa-1")
    made = release_stage.create(cfg, "r1", "rel-1")
    outcome = stage.run(tessy_only, "run-eval-3", release="r1")
    assert [(r.method, r.release_id, r.n_train) for r in outcome.rows[1:]] == [("tessy", made.release_id, 4)]
    with pytest.raises(ReleaseNameError, match="no release named 'r9'"):
        stage.run(tessy_only, "run-eval-4", release="r9")


def test_evaluate_cli_names_a_missing_benchmark_before_any_work(tmp_path, tiny_models):
    cfg_path = tmp_path / "pipeline.yaml"
    ingested(
        tmp_path, tiny_models, evaluate={"benchmark": str(tmp_path / "none.jsonl")}, qa={"unsafe_exec": True}
    )
    result = runner.invoke(app, ["evaluate", "-c", str(cfg_path), "--json"])
    assert isinstance(result.exception, BenchmarkError) and "none.jsonl not found" in str(result.exception)
    with open_warehouse(load_config(cfg_path).warehouse, read_only=True) as wh:
        assert wh.scalar("SELECT count(*) FROM evaluations") == 0


def test_the_evaluation_gate_blocks_publishing_until_the_fine_tune_beats_the_base(tmp_path, tiny_models):
    cfg = ingested(tmp_path, tiny_models, release={"methods": ["tessy"]}, qa={"student_nll": False})
    write_traces(cfg, methods=("tessy",))
    qa_stage.run(cfg, "qa-1")
    release_stage.create(cfg, "r1", "rel-1")
    gate = EvaluateGateConfig(enabled=True, method="tessy", min_gain=0.02)

    def publish():
        return release_stage.publish(cfg.warehouse, "r1", "org/set", client=FakeHub(), gate=gate)

    with pytest.raises(ReleaseBlocked, match="no evaluate run finished after the release"):
        publish()
    for tessy, message in ((0.51, r"pass@1 0.510 vs the base's 0.500 \(gain \+0.010 < "), (0.6, None)):
        with recorded_run(cfg.warehouse, "evaluate", cfg.public_dict()) as run:
            run.stats = {"base": 0.5, "tessy": tessy, "ci95": {}, "seeds": 1}
        if message:
            with pytest.raises(ReleaseBlocked, match=message):
                publish()
        else:
            assert publish().revision == "abc123"
    # Without the gate the same release publishes whatever the evaluations say.
    assert release_stage.publish(cfg.warehouse, "r1", "org/other", client=FakeHub()).revision == "abc123"
    # The newest evaluation shows in the next QA report (with its plot) and release card.
    report = qa_stage.run(cfg, "qa-2")
    assert report.evaluation["tessy"] == 0.6 and any(p.name == "evaluation.png" for p in report.plots)
    assert "| fine-tuned on tessy | 0.600 | – | 0.100 |" in report.report.read_text()
    card = (release_stage.create(cfg, "r2", "rel-2").folder / "README.md").read_text()
    assert "## Fine-tuning the student (evaluate run" in card and "| base | 0.500 |" in card
