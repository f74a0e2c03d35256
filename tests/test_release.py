"""Release export (shards, content hash), the dataset card, `datasets` reading the export offline, and
publishing through a fake Hub client, with the token never leaking."""

import logging
import traceback
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
from huggingface_hub import DatasetCard

from tessy.quality.expectations import (
    GateConfig,
    SolvedRates,
    row_checks,
    solved_ratio_outcome,
    validate_release,
)
from tessy.release import (
    CardInfo,
    PublishError,
    card_markdown,
    check_folder,
    content_hash,
    export_release,
    publish,
    render_card,
    write_card,
)
from tessy.stages.release import baseline_rates, keep_solved

TOKEN = "hf_fakeTokenThatMustNeverLeak0123456789"


def make_frame(n: int = 5) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "trace_id": [f"t{i:02d}" for i in range(n)],
            "question_id": [f"q{i}" for i in range(n)],
            "method": ["tessy"] * n,
            "question": [f"Print {i} squared." for i in range(n)],
            "text": [
                f"<think>\nOkay. {i}*{i} is {i * i}.\n</think>\n\n```python\nprint({i * i})\n```"
                for i in range(n)
            ],
            "answer": [f"```python\nprint({i * i})\n```" for i in range(n)],
            "n_tokens": [30 + i for i in range(n)],
            "n_tokens_teacher": [20] * n,
            "n_tokens_student": [10 + i for i in range(n)],
        }
    )


def make_card(export, **over) -> CardInfo:
    info = dict(
        name="TESSY microworld SFT",
        release_id="rel-1",
        content_hash=export.content_hash,
        n_rows=export.n_rows,
        student_model="micro-student",
        teacher_model="micro-teacher",
        predictor_ids=["pred-student-1", "pred-teacher-1"],
        methods=["tessy"],
        parent_release_id="rel-0",
        metrics=[{"method": "tessy", "samples": 5, "student_share": 0.31}],
        manifest={"run_ids": ["run-1"], "config_hash": "abc"},
    )
    return CardInfo(**(info | over))


@pytest.fixture
def release(tmp_path) -> Path:
    folder = tmp_path / "release"
    export = export_release(make_frame(), folder, max_rows_per_shard=2)
    write_card(folder, make_card(export))
    return folder


class FakeHub:
    """Records the calls publish makes, and the files it would upload."""

    def __init__(self, fail_with: str | None = None):
        self.calls: list[tuple[str, tuple, dict]] = []
        self.uploaded: list[str] = []
        self.fail_with = fail_with

    def create_repo(self, *args, **kwargs):
        self.calls.append(("create_repo", args, kwargs))
        if self.fail_with:
            raise RuntimeError(self.fail_with)
        return SimpleNamespace(repo_id=args[0])

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", (), kwargs))
        folder = Path(kwargs["folder_path"])
        self.uploaded = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        return SimpleNamespace(oid="0123abcd" * 5)


def test_export_shards_in_trace_order(tmp_path):
    export = export_release(make_frame().reverse(), tmp_path, config="default", max_rows_per_shard=2)
    assert [f.as_posix() for f in export.files] == [
        "data/default/train-00000-of-00003.parquet",
        "data/default/train-00001-of-00003.parquet",
        "data/default/train-00002-of-00003.parquet",
    ]
    rows = pl.concat([pl.read_parquet(tmp_path / f) for f in export.files])
    assert rows["trace_id"].to_list() == [f"t{i:02d}" for i in range(5)]
    assert rows["messages"][1].to_list() == [
        {"role": "user", "content": "Print 1 squared."},
        {"role": "assistant", "content": rows["text"][1]},
    ]


def test_content_hash_is_independent_of_layout_and_order(tmp_path):
    a = export_release(make_frame(), tmp_path / "a", max_rows_per_shard=2)
    b = export_release(
        make_frame().sample(fraction=1.0, shuffle=True, seed=3), tmp_path / "b", max_rows_per_shard=10
    )
    assert a.content_hash == b.content_hash and len(a.files) == 3 and len(b.files) == 1
    reread = pl.concat([pl.read_parquet(tmp_path / "b" / f) for f in b.files])
    assert content_hash(reread) == a.content_hash
    changed = make_frame().with_columns(text=pl.col("text").str.replace("Okay", "Hmm"))
    assert export_release(changed, tmp_path / "c").content_hash != a.content_hash


def test_reexport_replaces_old_shards(tmp_path):
    export_release(make_frame(), tmp_path, max_rows_per_shard=1)
    export = export_release(make_frame(), tmp_path, max_rows_per_shard=10)
    assert sorted(p.name for p in (tmp_path / "data" / "default").iterdir()) == [
        "train-00000-of-00001.parquet"
    ]
    assert export.n_rows == 5


def test_export_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="unique"):
        export_release(pl.concat([make_frame(), make_frame().head(1)]), tmp_path)
    with pytest.raises(ValueError, match="at least one row"):
        export_release(make_frame().head(0), tmp_path)
    with pytest.raises(ValueError, match="question"):
        export_release(make_frame().drop("question"), tmp_path)


def test_card_has_configs_and_lineage(release):
    card = DatasetCard.load(release / "README.md")
    assert card.data.configs == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "data/default/train-*"}]}
    ]
    assert card.data.license == "apache-2.0" and "tessy" in card.data.tags
    for needle in (
        "micro-teacher",
        "pred-teacher-1",
        "rel-0",
        '"config_hash": "abc"',
        "| tessy | 5 | 0.310 |",
    ):
        assert needle in card.text
    assert "run-1" not in card.text  # only allow-listed manifest fields are published
    shown = card_markdown(release / "README.md")  # for the Prefect UI: no YAML block to render as text
    assert shown.lstrip().startswith("# ") and "configs:" not in shown and "micro-teacher" in shown
    assert "parent release: none" in render_card(
        make_card(SimpleNamespace(content_hash="h", n_rows=1), parent_release_id=None)
    )


def test_datasets_reads_the_export_offline(release, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from datasets import load_dataset

    ds = load_dataset(str(release), "default", split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.num_rows == 5
    assert ds[0]["trace_id"] == "t00"
    assert ds[0]["messages"][1]["role"] == "assistant"


def test_publish_with_a_fake_client(release):
    hub = FakeHub()
    result = publish(release, "org/tessy-sft", token=TOKEN, client=hub)
    assert result.revision == "0123abcd" * 5 and not result.dry_run
    assert result.files == ["README.md", *[f"data/default/train-0000{i}-of-00003.parquet" for i in range(3)]]
    assert [c[0] for c in hub.calls] == ["create_repo", "upload_folder"]
    _, args, kwargs = hub.calls[0]
    assert args == ("org/tessy-sft",)
    assert kwargs == {"repo_type": "dataset", "exist_ok": True, "private": True, "token": TOKEN}
    upload = hub.calls[1][2]
    assert upload["repo_id"] == "org/tessy-sft" and upload["repo_type"] == "dataset"
    assert upload["folder_path"] == str(release) and upload["allow_patterns"] == result.files
    assert hub.uploaded == result.files


def test_dry_run_checks_and_calls_nothing(release):
    hub = FakeHub()
    result = publish(release, "org/tessy-sft", client=hub, dry_run=True)
    assert result.dry_run and result.revision is None and len(result.files) == 4
    assert hub.calls == []


def test_folder_checks_catch_problems(release):
    (release / "data" / "default" / "train-00001-of-00003.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="not readable Parquet"):
        check_folder(release)
    (release / "README.md").unlink()
    with pytest.raises(ValueError, match="no dataset card"):
        publish(release, "org/x", client=FakeHub(), dry_run=True)


def test_a_token_inside_the_release_blocks_publishing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    frame = make_frame().with_columns(text=pl.col("text") + f" {TOKEN}")
    export = export_release(frame, tmp_path)
    write_card(tmp_path, make_card(export))
    hub = FakeHub()
    with pytest.raises(ValueError, match="contains the Hub token") as err:
        publish(tmp_path, "org/x", client=hub, dry_run=True)
    assert TOKEN not in str(err.value) and hub.calls == []


def test_token_never_leaks(release, monkeypatch, capsys, caplog):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    hub = FakeHub(fail_with=f"401 Unauthorized: invalid token {TOKEN}")
    with pytest.raises(PublishError) as err:
        publish(release, "org/tessy-sft", client=hub)
    assert hub.calls[0][2]["token"] == TOKEN  # the env token does reach the client
    exc = err.value
    assert "401 Unauthorized" in str(exc) and "***" in str(exc)
    shown = "".join(traceback.format_exception(exc)) + repr(exc) + str(exc.__context__) + str(exc.__cause__)
    out = capsys.readouterr()
    assert TOKEN not in shown + out.out + out.err + caplog.text
    for path in release.rglob("*"):
        assert not path.is_file() or TOKEN.encode() not in path.read_bytes()


def test_solved_ratio_passes_fails_and_skips():
    at = SolvedRates("tessy", 4 / 6, "teacher-only", 5 / 6, 6)
    assert solved_ratio_outcome(at, 0.8).success  # exactly at the bar, whatever the float rounding
    low = solved_ratio_outcome(SolvedRates("tessy", 1 / 3, "teacher-only", 0.89, 40), 0.9)
    assert not low.success and not low.skipped
    assert low.detail == "tessy solved 0.33 < 0.9 x teacher-only 0.89 over 40 questions"
    assert low.observed["n_questions"] == 40 and low.observed["min_ratio"] == 0.9
    for nothing in (None, SolvedRates("tessy", 0.0, "teacher-only", 0.0, 0)):
        skipped = solved_ratio_outcome(nothing, 0.9)
        assert skipped.success and skipped.skipped and skipped.detail.startswith("skipped: no tessy")


def gate_frame() -> pl.DataFrame:
    """make_frame's traces with the columns the gate reads; no question has tests."""
    frame = make_frame().with_columns(
        status=pl.lit("ok"),
        attempts=pl.lit(1),
        test_cases=pl.lit(None, dtype=pl.String),
        n_switches=pl.lit(1),
        n_wasted_tokens=pl.lit(0),
    )
    return frame.hstack(row_checks(frame))


def test_gate_fails_on_the_solved_ratio_and_says_with_which_figures():
    low = SolvedRates("tessy", 0.5, "teacher-only", 1.0, 4)
    gate = validate_release(gate_frame(), GateConfig(min_solved_ratio=0.9), solved=low)
    assert not gate.success and gate.failed == ["solved_vs_teacher_only"]
    assert gate.reasons == [
        "solved_vs_teacher_only (tessy solved 0.50 < 0.9 x teacher-only 1.00 over 4 questions)"
    ]
    assert gate.raw["checks"][0]["success"] is False
    alone = validate_release(gate_frame())  # no baseline: passes, and says the check was skipped
    assert alone.success and alone.skipped == ["solved_vs_teacher_only"]


def test_keep_solved_drops_and_counts_each_reason():
    frame = pl.DataFrame(
        {
            "trace_id": ["solved", "wrong", "untested", "not-run"],
            "question_id": ["q1", "q2", "q3", "q4"],
            "solved": [1.0, 0.0, None, None],
        }
    )
    kept, dropped = keep_solved(frame, tested={"q1", "q2", "q4"})
    assert kept["trace_id"].to_list() == ["solved"] and kept.columns == frame.columns
    assert dropped == {"unsolved": 1, "no_tests": 1, "not_run": 1}


def test_baseline_rates_need_both_methods():
    rates = pl.DataFrame(
        {"method": ["teacher-only", "tessy"], "n_questions": [3, 3], "solved_rate": [1.0, 2 / 3]}
    )
    assert baseline_rates(rates) == SolvedRates("tessy", 2 / 3, "teacher-only", 1.0, 3)
    assert baseline_rates(rates.head(0)) is None
