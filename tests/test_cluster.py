"""Many machines: storage URLs against a real S3 API (moto's server on loopback, through s3fs), and the
synthesize flow's parts as tasks on a real two-node Ray cluster (`ray start` twice on loopback)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from prefect import flow, get_client, task
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

from tessy.config import RunnerConfig, load_config
from tessy.errors import ConfigError, ConfigNotReady
from tessy.preflight import ensure_ready
from tessy.storage import Folder
from tessy.synthesis.shards import SCHEMA, ShardWriter, finished_ids
from warehouse.db import open_warehouse
from warehouse.traces import load_shards

BUCKET = "tessy-test"


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """A moto S3 server on loopback with one bucket; yields the AWS variables that reach it."""
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


def trace(i: int, question_id: str = "q") -> dict[str, object]:
    return {
        "trace_id": f"t{i}",
        "question_id": f"{question_id}{i}",
        "method": "teacher-only",
        "text": f"thinking {i}",
        "answer": f"answer {i}",
        "spans": [{"author": "teacher", "text": f"thinking {i}", "n_tokens": 2}],
        "n_tokens": 4,
        "status": "ok",
        "attempts": 1,
    }


class Row:
    def __init__(self, row: dict[str, object]):
        self._row = row

    def row(self) -> dict[str, object]:
        return self._row


def test_shards_go_through_s3_and_a_shard_that_does_not_parse_is_quarantined(tmp_path, s3):
    folder = Folder(f"s3://{BUCKET}/night/shards")
    writer = ShardWriter(folder, shard_size=2)
    for i in range(5):
        writer.add(Row(trace(i)))
    writer.flush()
    assert len(folder.names()) == 3 and finished_ids(folder) == {f"t{i}" for i in range(5)}
    folder.fs.pipe_file(folder.path("shard-broken.parquet"), b"not parquet")
    folder.write_table("shard-alien.parquet", pa.table({"x": [1]}))  # parses, but holds no traces

    with open_warehouse(tmp_path / "wh.duckdb") as wh:
        assert load_shards(wh, folder, "run-1") == {"traces": 5, "spans": 5, "quarantined_shards": 2}
        assert load_shards(wh, folder, "run-2") == {"traces": 0, "spans": 0, "quarantined_shards": 0}
        quarantined = wh.frame("SELECT source, locator, reason FROM quarantine ORDER BY locator").rows()
    assert [(s, loc.rsplit("/", 1)[-1]) for s, loc, _ in quarantined] == [
        ("shard", "shard-alien.parquet"),
        ("shard", "shard-broken.parquet"),
    ]
    assert all(reason for *_, reason in quarantined)
    assert folder.names() == []
    assert len((folder / "loaded").names()) == 3
    assert (folder / "quarantine").names() == ["shard-alien.parquet", "shard-broken.parquet"]
    loaded = folder / "loaded"
    assert loaded.read_table(loaded.names()[0]).schema.names == SCHEMA.names


def test_predictor_weights_reach_the_parts_through_storage(tmp_path, s3):
    from tessy.stages import synthesize as stage
    from warehouse.predictors import PredictorRef

    weights = tmp_path / "predictor"
    (weights / "sub").mkdir(parents=True)
    (weights / "config.json").write_text("{}")
    (weights / "sub" / "vocab.txt").write_text("a b")
    cfg = load_config(write_config(tmp_path, storage=f"s3://{BUCKET}/weights-test"))
    refs = {"student": PredictorRef("p1", str(weights))}
    shared = stage.shared_predictors(cfg, refs)
    assert shared["student"].path == f"s3://{BUCKET}/weights-test/predictors/p1"
    assert stage.shared_predictors(cfg, refs) == shared  # copied once
    local = stage._local_predictors(cfg, shared)["student"].path
    assert (Path(local) / "sub" / "vocab.txt").read_text() == "a b"
    assert (Path(local) / "config.json").read_text() == "{}"


def test_the_qa_report_and_a_release_are_kept_in_s3_and_published_from_there(tmp_path, s3, tiny_models):
    """With a storage URL, QA's report and the release folder reach the bucket, and publishing reads the
    release from there on a machine with no copy of its own; files changed in the bucket are refused."""
    from tessy.errors import ReleaseTampered
    from tessy.stages import qa as qa_stage
    from tessy.stages import release as release_stage
    from tests.test_stages import FakeHub, ingested, write_traces

    storage = f"s3://{BUCKET}/release-night"
    cfg = ingested(
        tmp_path,
        tiny_models,
        storage=storage,
        qa={"student_nll": False, "run_code": False},
        release={"methods": ["tessy", "student-only"]},
    )
    write_traces(cfg)
    qa = qa_stage.run(cfg, "qa-1")
    assert qa.url == f"{storage}/qa/qa-1"
    assert Folder(qa.url).names(".md") == ["report.md"] and Folder(qa.url).names(".png")
    made = release_stage.create(cfg, "r1", "rel-run")
    assert made.url == f"{storage}/releases/r1" and made.n_rows == 8
    stored = Folder(made.url)
    shards = (stored / "data" / "default").names()
    assert (
        shards
        and stored.exists("README.md")
        and Folder(f"{storage}/releases").names(".json") == ["r1.validation.json"]
    )

    shutil.rmtree(made.folder)  # publishing on another machine: only the bucket holds the release
    hub = FakeHub()
    assert release_stage.publish(cfg.warehouse, "r1", "org/set", client=hub).revision == "abc123"
    assert set(hub.uploaded) >= {"README.md", *(f"data/default/{name}" for name in shards)}

    stored.fs.pipe(stored.path(f"data/default/{shards[0]}"), b"not the release's rows")
    with pytest.raises(ReleaseTampered, match=f"{storage}/releases/r1"):
        release_stage.publish(cfg.warehouse, "r1", "org/set", client=FakeHub())


def write_config(tmp_path: Path, **top: object) -> Path:
    import yaml

    path = tmp_path / "pipeline.yaml"
    config = {"name": "t", "warehouse": str(tmp_path / "wh.duckdb"), "workdir": str(tmp_path / "w"), **top}
    path.write_text(yaml.safe_dump(config))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_storage_urls_and_ray_addresses_fail_before_any_work(tmp_path, s3, monkeypatch):
    def problems(**top: object) -> str:
        cfg = load_config(write_config(tmp_path, **top))
        with pytest.raises(ConfigNotReady) as e:
            ensure_ready(cfg, runner=True)
        return str(e.value)

    assert "s4://x" in problems(storage="s4://x") and "Protocol not known" in problems(storage="s4://x")
    assert "bucket does not exist" in problems(storage="s3://no-such-bucket/work")
    closed = free_port()
    ray_down = problems(runner={"kind": "ray", "address": f"127.0.0.1:{closed}"})
    assert f"Ray cluster at 127.0.0.1:{closed} does not answer" in ray_down
    assert "is not host:port" in problems(runner={"kind": "ray", "address": "head-node"})
    with pytest.raises(ConfigError, match="Protocol not known"):
        Folder("s4://x")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    Folder(f"s3://{BUCKET}").fs.clear_instance_cache()  # a fresh process: no client made with the keys
    assert "cannot be written (NoCredentialsError" in problems(storage=f"s3://{BUCKET}/work")
    Folder(f"s3://{BUCKET}").fs.clear_instance_cache()  # the next test's clients get the keys again
    assert not list((tmp_path / "w").glob("*"))  # nothing was written


@pytest.fixture(scope="module")
def ray_cluster(s3: dict[str, str]) -> Iterator[str]:
    """A head and one worker node on loopback, started with the S3 variables (Ray workers inherit the
    node's environment, as on a real cluster); yields the head's address."""
    pytest.importorskip("prefect_ray")
    from tasks.runner import local_ray_cluster

    with local_ray_cluster(nodes=2, env=s3) as address:
        yield address


def test_synthesis_and_qa_on_ray_with_s3_storage_equal_threads(
    tmp_path, tiny_models, s3, ray_cluster, prefect_harness, monkeypatch
):
    """The same jobs, seeds and models: two parts as Ray tasks on two nodes, exchanging plans, shards
    and QA parts through S3, make the traces and per-trace metrics one part on a thread makes with
    local storage."""
    from flows.qa import qa_flow
    from flows.synthesize import synthesize_flow
    from tests.test_stages import TWO_QUESTIONS_A_NIGHT, ingested

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    # One sample at a time per part: the in-process engines seed torch's global RNG, which two
    # samples on one process's threads would share.
    # The tiny pair is barely trained and most of its samples run over small caps: three tries each
    # and room for a 64-token answer leave traces for QA to score.
    synthesis = {**TWO_QUESTIONS_A_NIGHT, "max_thinking_tokens": 64, "max_answer_tokens": 64, "limit": 3}
    synthesis |= {"concurrency": 1, "max_attempts": 3}
    results = {}
    for name, extra in {
        "threads": {},
        "ray": {
            "storage": f"s3://{BUCKET}/ray-night",
            "runner": {"kind": "ray", "address": ray_cluster, "parts": 2},
        },
    }.items():
        root = tmp_path / name
        root.mkdir()
        cfg = ingested(root, tiny_models, synthesis=synthesis, qa={"student_nll": False}, **extra)
        stats = synthesize_flow(root / "pipeline.yaml")
        assert stats["jobs"] == 6 and stats["traces"] == 6, stats
        qa = qa_flow(root / "pipeline.yaml")
        with open_warehouse(cfg.warehouse, read_only=True) as wh:
            results[name] = wh.frame(
                "SELECT trace_id, status, text, answer, n_tokens FROM traces ORDER BY trace_id"
            ).rows()
            results[f"{name} qa"] = wh.frame(
                "SELECT subject_id, metric, round(value, 9) FROM qa_metrics WHERE run_id = ?"
                " AND subject_id NOT LIKE '%/%' ORDER BY ALL",
                [qa["run_id"]],
            ).rows()
        if name == "ray":
            assert not (cfg.workdir / "shards").exists()  # every shard went through the bucket
            assert len((Folder(cfg.storage) / "shards" / "loaded").names()) >= 2  # one per part at least
            # The plan's and QA's parts went through the bucket, and are gone once loaded.
            bucket = Folder(cfg.storage)
            assert not (bucket / "plans" / stats["run_id"]).exists()
            assert not (bucket / "qa" / qa["run_id"] / "todo").exists()
            assert (
                not (cfg.workdir / "plans").exists()
                and not (cfg.workdir / "qa" / qa["run_id"] / "todo").exists()
            )
    assert results["ray"] == results["threads"]
    assert results["ray qa"] == results["threads qa"] and results["ray qa"]


def kill_a_part_once_a_trace_is_done(shards: Folder, killed: list[int], timeout_s: float = 300) -> None:
    """SIGKILL the Ray worker running a synthesis part as soon as any part has written a shard (one
    trace, with `shard_size` 1), so the part dies with jobs still to do."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if shards.names():
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    title = cmdline.read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                if title.startswith("ray::synthesize_part"):
                    os.kill(int(cmdline.parent.name), signal.SIGKILL)
                    killed.append(int(cmdline.parent.name))
                    return
        time.sleep(0.05)


def test_a_ray_worker_killed_mid_part_loses_and_duplicates_no_trace(
    tmp_path, tiny_models, s3, ray_cluster, prefect_harness, monkeypatch
):
    """Ray runs a part again when its worker dies; the new run skips the traces already in shards."""
    from flows.synthesize import synthesize_flow
    from tests.test_stages import TWO_QUESTIONS_A_NIGHT, ingested

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    synthesis = {**TWO_QUESTIONS_A_NIGHT, "max_thinking_tokens": 64, "max_answer_tokens": 32, "limit": 4}
    cfg = ingested(
        tmp_path,
        tiny_models,
        synthesis={**synthesis, "concurrency": 1, "shard_size": 1},
        storage=f"s3://{BUCKET}/killed",
        runner={"kind": "ray", "address": ray_cluster, "parts": 2},
    )
    killed: list[int] = []
    watcher = threading.Thread(
        target=kill_a_part_once_a_trace_is_done, args=(Folder(cfg.storage) / "shards", killed)
    )
    watcher.start()
    stats = synthesize_flow(tmp_path / "pipeline.yaml")
    watcher.join()
    assert killed, "no part was running when the first trace was done"
    assert stats["jobs"] == 8 and stats["traces"] == 8, stats
    with open_warehouse(cfg.warehouse, read_only=True) as wh:
        traces = wh.frame("SELECT trace_id, status, error FROM traces")
    # One trace per job; a sample the tiny models fail (over its caps) is a trace that says why.
    assert traces.height == 8 and traces["trace_id"].n_unique() == 8
    assert traces.filter(status="failed")["error"].null_count() == 0
    # And written once: the part run again skipped what the killed one had written.
    loaded = Folder(cfg.storage) / "shards" / "loaded"
    assert sum(loaded.read_table(name).num_rows for name in loaded.names()) == 8


@task
def part_api(index: int) -> tuple[str | None, str | None]:
    """The Prefect API the part reports to, and the one its process's log shipping reads."""
    return get_current_settings().api.url, os.environ.get("PREFECT_API_URL")


def test_ray_parts_report_to_the_flows_own_prefect_api(ray_cluster, monkeypatch):
    """With no Prefect server set, the flow runs on a temporary one (as `make demo`'s does); its parts
    on Ray report to that one. Left to themselves, Ray workers have their node's environment: each
    started a temporary server of its own, and the parts' task runs and logs were lost."""
    from tasks.runner import map_parts

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    runner = RunnerConfig(kind="ray", address=ray_cluster, parts=2)

    @flow
    def night() -> tuple[str, list[tuple[str | None, str | None]]]:
        seen = map_parts(runner, "parts", part_api, [(0,), (1,)])
        return str(get_client(sync_client=True).api_url), seen

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert get_current_settings().api.url is None
        own, seen = night()
    assert seen == [(own, own)] * 2
