"""A config meant for another machine fails at once, with one line naming every missing piece, and
leaves the disk as it was."""

from pathlib import Path

import pytest
import yaml

from tessy.config import load_config
from tessy.engines.servers import free_port
from tessy.errors import ConfigNotReady
from tessy.preflight import ensure_ready
from tests.conftest import REPO


def elsewhere_config(tmp_path: Path) -> Path:
    """Production-shaped: storage on an unmounted absolute path, a local source that is not there, a
    student served by tessy from a missing dir, a teacher on an endpoint nothing listens on."""
    config = {
        "name": "elsewhere",
        "warehouse": str(tmp_path / "mnt/tessy/warehouse.duckdb"),
        "workdir": str(tmp_path / "mnt/tessy/work"),
        "sources": [{"path": str(tmp_path / "missing.jsonl")}, {"path": "hf://org/data"}],
        "models": {
            "student": {"path": str(tmp_path / "no-model"), "family": "qwen3"},
            "teacher": {
                "path": "org/teacher",
                "family": "gpt-oss",
                "engine": "openai",
                "endpoints": [f"http://127.0.0.1:{free_port()}"],
            },
        },
    }
    path = tmp_path / "elsewhere.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_every_missing_piece_in_one_line(tmp_path: Path) -> None:
    cfg = load_config(elsewhere_config(tmp_path))
    with pytest.raises(ConfigNotReady) as error:
        ensure_ready(cfg, roles=("student", "teacher"), sources=True, config_path="elsewhere.yaml")
    message = str(error.value)
    assert "\n" not in message and message.startswith("config 'elsewhere' (elsewhere.yaml)")
    assert f"warehouse folder {tmp_path}/mnt/tessy does not exist" in message
    assert f"source {tmp_path}/missing.jsonl not found" in message
    assert "hf://" not in message  # Hub sources are read (and retried) by the stage
    assert f"student model dir {tmp_path}/no-model not found" in message
    assert "teacher endpoint http://127.0.0.1:" in message and "does not answer (ConnectError)" in message


def test_relative_storage_and_present_pieces_pass(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").mkdir()
    (tmp_path / "q.jsonl").write_text("")
    config = {
        "name": "here",
        "sources": [{"path": "q.jsonl"}],
        "models": {"student": {"path": "model"}, "teacher": {"path": "model", "served_name": "t"}},
    }
    (tmp_path / "here.yaml").write_text(yaml.safe_dump(config))
    ensure_ready(load_config("here.yaml"), roles=("student", "teacher"), sources=True)


def test_the_production_config_is_refused_on_a_dev_box() -> None:
    cfg = load_config(REPO / "configs/production.yaml")
    if cfg.warehouse.parent.exists():
        pytest.skip(f"{cfg.warehouse.parent} exists on this machine")
    # Storage only: the check must not reach for the config's GPU hosts from a test.
    with pytest.raises(ConfigNotReady, match="warehouse folder /data/tessy does not exist"):
        ensure_ready(cfg)
    assert not cfg.warehouse.parent.exists()


def test_nightly_flow_fails_before_writing_anything(tmp_path: Path, prefect_harness) -> None:
    from flows.nightly import nightly_flow

    path = elsewhere_config(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ConfigNotReady):
        nightly_flow(path)
    assert sorted(tmp_path.rglob("*")) == before
