"""Shared test set-up: Prefect and Great Expectations never touch the user's home or the network."""

import os
import tempfile
from pathlib import Path

import pytest

_PREFECT_HOME = tempfile.mkdtemp(prefix="tessy-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.pop("PREFECT_API_URL", None)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models train and run fastest on one thread, above all on a CPU shared with other jobs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness():
        yield


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, Path]:
    """The microworld's tiny student/teacher pair (built once, cached under .tessy/models/tiny)."""
    from tessy.microworld.build import build

    return build(preset="tiny")


def pipeline_config(tmp_path: Path, models: dict[str, Path], **sections) -> Path:
    """A small pipeline YAML over `models` (in-process engines) in `tmp_path`; sections override."""
    import yaml

    config = {
        "name": "test",
        "warehouse": str(tmp_path / "wh.duckdb"),
        "workdir": str(tmp_path / "work"),
        "models": {
            "student": {"path": str(models["student"]), "family": "qwen3", "engine": "hf"},
            "teacher": {"path": str(models["teacher"]), "family": "gpt-oss", "engine": "hf"},
        },
        "filter": {"judge": "heuristic"},
        **sections,
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
