import pytest

from tessy.config import load_config
from tessy.errors import ConfigError
from tests.conftest import REPO


@pytest.mark.parametrize("name", ["demo", "production", "cluster"])
def test_shipped_configs_load(name):
    cfg = load_config(REPO / f"configs/{name}.yaml")
    assert cfg.sources and cfg.model("student").family == "qwen3" and cfg.model("teacher").family == "gpt-oss"


def test_unknown_key_is_an_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nsources:\n  - path: a.jsonl\n    fromat: generic\n")
    with pytest.raises(ValueError, match=r"bad.yaml: sources.0.fromat: Extra inputs are not permitted"):
        load_config(path)


def test_a_moved_setting_says_where_it_went(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("name: x\nsynthesis:\n  workers: 4\n")
    with pytest.raises(ConfigError, match=r"old.yaml: synthesis.workers is now runner.parts"):
        load_config(path)


def test_missing_config_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="config not found"):
        load_config(tmp_path / "nope.yaml")
