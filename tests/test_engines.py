"""Engine unit tests: the transformers backend on the microworld's tiny model, and the HTTP backend against
scripted servers (httpx mock transport) and a closed port."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from transformers import AutoTokenizer

from tessy.config import ModelConfig
from tessy.engines import EndpointsDown, RequestRejected, Sampling
from tessy.engines.hf import HFEngine
from tessy.engines.openai import OpenAIEngine
from tessy.engines.servers import (
    ServerError,
    ServerGroup,
    ServerSpec,
    group_cpu_seconds,
    serve_forever,
    start_failure_hint,
    untied_checkpoint,
)
from tessy.microworld.build import build
from tessy.microworld.formats import FORMATS
from tessy.templates import detect_family


@pytest.fixture(scope="module")
def microworld(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The microworld's tiny pair: real, loadable models built in seconds."""
    return build(tmp_path_factory.mktemp("microworld"), preset="tiny")


@pytest.fixture(scope="module")
def tiny_model(microworld: dict[str, Path]) -> Path:
    return microworld["teacher"]  # Llama, GPT-OSS harmony format


@pytest.fixture(scope="module")
def hf(tiny_model: Path) -> HFEngine:
    return HFEngine(tiny_model)


def run(coro):
    return asyncio.run(coro)


# --- transformers backend -------------------------------------------------------------------------


def test_hf_generates_exactly_max_tokens_and_is_seeded(hf: HFEngine) -> None:
    params = Sampling(max_tokens=12, seed=7, ignore_eos=True)
    a = run(hf.complete("Okay, let", params))
    b = run(hf.complete("Okay, let", params))
    assert a.n_tokens == 12 and a.finish_reason == "length"
    assert a.text and a.text == b.text
    assert a.endpoint == hf.name


def test_hf_until_cuts_and_stops_generation(hf: HFEngine) -> None:
    seen: list[str] = []

    async def until(text: str) -> int | None:
        seen.append(text)
        return 3 if len(text) >= 6 else None

    out = run(hf.complete("Okay, let", Sampling(max_tokens=100, seed=1, ignore_eos=True), until=until))
    assert out.finish_reason == "cut"
    assert out.text == seen[-1][:3]
    # Generation stopped at the cut, not at max_tokens.
    assert out.n_tokens < 20


def test_hf_stop_string(hf: HFEngine) -> None:
    params = Sampling(max_tokens=30, seed=3, ignore_eos=True)
    full = run(hf.complete("So the", params)).text
    stop = full[10:13]
    out = run(hf.complete("So the", Sampling(max_tokens=30, seed=3, ignore_eos=True, stop=(stop,))))
    assert out.finish_reason == "stop"
    assert out.text == full[: full.index(stop)]


def test_hf_rejects_bad_cut_and_long_prompt(hf: HFEngine) -> None:
    with pytest.raises(ValueError, match="char offset"):
        run(hf.complete("Okay", Sampling(max_tokens=5, seed=0, ignore_eos=True), until=lambda t: len(t) + 5))
    with pytest.raises(RequestRejected, match="leaves no room"):
        run(hf.complete("Okay " * 3000, Sampling(max_tokens=5)))


def test_hf_caps_max_tokens_to_the_context_left(hf: HFEngine) -> None:
    per_word = len(hf.tokenizer("Okay " * 100).input_ids) / 100
    prompt = "Okay " * int((hf.max_len - 30) / per_word)
    room = hf.max_len - len(hf.tokenizer(prompt).input_ids)
    assert 0 < room < 100
    out = run(hf.complete(prompt, Sampling(max_tokens=room + 50, seed=0, ignore_eos=True)))
    assert out.n_tokens == room and out.finish_reason == "length"


def test_hf_serializes_concurrent_requests(hf: HFEngine) -> None:
    async def many():
        params = Sampling(max_tokens=5, seed=2, ignore_eos=True)
        return await asyncio.gather(*(hf.complete("Hmm", params) for _ in range(4)))

    outs = run(many())
    assert len({o.text for o in outs}) == 1 and all(o.n_tokens == 5 for o in outs)


def test_families_match_the_models_chat_templates(microworld: dict[str, Path]) -> None:
    question = "Print the sum of {a, b}."
    for role, fmt in FORMATS.items():
        tokenizer = AutoTokenizer.from_pretrained(microworld[role])
        family = detect_family(tokenizer)
        assert family.name == fmt.family and family.tokenizer is tokenizer
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        assert rendered == family.thinking_prompt(question) == fmt.prompt(question)
        # The end of thinking is found in decoded text with special tokens skipped and kept.
        ids = tokenizer(family.close_thinking("Sum them.") + "yes")["input_ids"]
        for skip in (True, False):
            decoded = tokenizer.decode(ids, skip_special_tokens=skip)
            assert family.split_thinking(decoded)[0].strip() == "Sum them.", (role, skip, decoded)


# --- HTTP backend ---------------------------------------------------------------------------------


def _chunks(pieces: list[str], finish: str = "length") -> list[dict]:
    events = [
        {"choices": [{"index": 0, "text": p, "token_ids": [i], "finish_reason": None}]}
        for i, p in enumerate(pieces)
    ]
    events[-1]["choices"][0]["finish_reason"] = finish
    events.append({"choices": [], "usage": {"completion_tokens": len(pieces)}})
    return events


class FakeServers:
    """Scripted OpenAI-compatible servers keyed by host; records every request."""

    def __init__(self, behaviour: dict[str, str], pieces: list[str] | None = None, delay: float = 0.0):
        # host -> "ok" | "refuse" | "500" | "400" | "drop" (its first stream breaks off after 2 events)
        self.behaviour = behaviour
        self.pieces = pieces or ["Okay", ",", " let", "'s", " see", "."]
        self.delay = delay
        self.requests: list[tuple[str, dict]] = []
        self.yielded = 0
        self.open: dict[str, int] = dict.fromkeys(behaviour, 0)  # streams in flight per host
        self.peak: dict[str, int] = dict.fromkeys(behaviour, 0)

    async def _stream(self, host: str, events: list[dict], done: bool = True):
        self.open[host] += 1
        self.peak[host] = max(self.peak[host], self.open[host])
        for e in events:
            await asyncio.sleep(self.delay)
            self.yielded += 1
            yield f"data: {json.dumps(e)}\n\n".encode()
        self.open[host] -= 1  # before the last event: the client may stop reading right after it
        if done:
            yield b"data: [DONE]\n\n"

    def handler(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        mode = self.behaviour[host]
        if mode == "refuse":
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": f"model-{host}"}]})
        body = json.loads(request.content)
        self.requests.append((host, body))
        if mode in ("500", "400"):
            return httpx.Response(int(mode), text=f"scripted {mode}")
        if "prompt_logprobs" in body:  # vLLM: the prompt's own token at each position, none at the first
            scored = [None] + [{str(t): {"logprob": -t / 10, "rank": 1}} for t in body["prompt"][1:]]
            return httpx.Response(200, json={"choices": [{"text": "x", "prompt_logprobs": scored}]})
        if mode == "drop":
            self.behaviour[host] = "ok"
            return httpx.Response(200, content=self._stream(host, _chunks(self.pieces)[:2], done=False))
        return httpx.Response(200, content=self._stream(host, _chunks(self.pieces)))

    def engine(self, **kw) -> OpenAIEngine:
        urls = [f"http://{h}:8000/v1" for h in self.behaviour]
        return OpenAIEngine(urls, transport=httpx.MockTransport(self.handler), **kw)


def test_openai_streams_and_sends_sampling() -> None:
    fake = FakeServers({"a": "ok"})

    async def go():
        async with fake.engine() as engine:
            return await engine.complete("Q", Sampling(max_tokens=6, seed=5, stop=("\n\n",)))

    out = run(go())
    assert out.text == "Okay, let's see." and out.n_tokens == 6 and out.finish_reason == "length"
    assert out.endpoint == "http://a:8000"
    body = fake.requests[0][1]
    assert body["model"] == "model-a" and body["stream"] is True and body["stream_options"]["include_usage"]
    assert (body["temperature"], body["top_p"], body["top_k"], body["min_p"]) == (0.7, 0.8, 20, 0.0)
    assert body["seed"] == 5 and body["stop"] == ["\n\n"] and body["max_tokens"] == 6
    assert body["return_token_ids"] is True and body["stream_interval"] == 4


def test_openai_plain_server_mode_sends_no_vllm_extensions() -> None:
    fake = FakeServers({"a": "ok"})

    async def go():
        async with fake.engine(model="m", return_token_ids=False, stream_interval=1) as engine:
            return await engine.complete("Q", Sampling())

    assert run(go()).n_tokens == 6  # from the usage chunk
    body = fake.requests[0][1]
    assert "return_token_ids" not in body and "stream_interval" not in body


async def _async_until(text: str) -> int | None:
    await asyncio.sleep(0)  # e.g. a batched boundary predictor behind an await
    return 4 if len(text) > 8 else None


@pytest.mark.parametrize("until", [lambda t: 4 if len(t) > 8 else None, _async_until])
def test_openai_until_closes_stream_early(until) -> None:
    fake = FakeServers({"a": "ok"}, pieces=[f" w{i}" for i in range(50)])

    async def go():
        async with fake.engine(model="m") as engine:
            return await engine.complete("Q", Sampling(max_tokens=50), until=until)

    out = run(go())
    assert out.finish_reason == "cut" and out.text == " w0 "
    assert out.n_tokens == 3  # token ids received before the cut
    assert fake.yielded < 10  # the server stopped being read right after the cut


class _BackgroundUntil:
    """Decides in the background, on the first text it is fed, to stop after that text's first char;
    says so only when fed again (the engine does that when `wake` is set)."""

    def __init__(self, wakes: bool):
        self.decided: int | None = None
        self.task: asyncio.Task | None = None
        if wakes:
            self.wake = asyncio.Event()

    async def _decide(self) -> None:
        await asyncio.sleep(0.02)
        self.decided = 1
        if hasattr(self, "wake"):
            self.wake.set()

    def __call__(self, text: str) -> int | None:
        if self.task is None:
            self.task = asyncio.ensure_future(self._decide())
        return self.decided


@pytest.mark.parametrize("wakes", [True, False])
def test_openai_until_woken_between_events_stops_the_stream_then(wakes: bool) -> None:
    # Events 0.2 s apart, a decision 0.02 s after the first: woken, the engine stops before the second.
    fake = FakeServers({"a": "ok"}, pieces=[f" w{i}" for i in range(10)], delay=0.2)
    until = _BackgroundUntil(wakes)

    async def go():
        async with fake.engine(model="m") as engine:
            return await engine.complete("Q", Sampling(max_tokens=10), until=until)

    out = run(go())
    assert out.finish_reason == "cut" and out.text == " "
    assert (out.n_tokens, fake.yielded) == ((1, 1) if wakes else (2, 2))


class _Recorder:
    """An `until` that never cuts and logs what it is fed, and each restart."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def restart(self) -> None:
        self.log.append("restart")

    def __call__(self, text: str) -> None:
        self.log.append(text)


def test_openai_stream_broken_off_is_retried_and_until_told_its_text_starts_over() -> None:
    fake = FakeServers({"a": "drop"})
    until = _Recorder()

    async def go():
        async with fake.engine(model="m", cooloff=0.01) as engine:
            return await engine.complete("Q", Sampling(), until=until)

    assert run(go()).text == "Okay, let's see."
    assert until.log == [
        "restart",
        "Okay",
        "Okay,",
        "restart",
        "Okay",
        "Okay,",
        "Okay, let",
        "Okay, let's",
    ] + [
        "Okay, let's see",
        "Okay, let's see.",
    ]


def test_openai_fails_over_and_takes_dead_endpoint_out() -> None:
    fake = FakeServers({"a": "refuse", "b": "ok", "c": "500"})

    async def go():
        async with fake.engine(model="m", cooloff=60) as engine:
            outs = [await engine.complete("Q", Sampling()) for _ in range(6)]
            return outs

    outs = run(go())
    assert {o.endpoint for o in outs} == {"http://b:8000"}
    # c answered 500 once, then was out: b served every completed request.
    assert [h for h, _ in fake.requests].count("c") == 1


def test_openai_all_down_names_every_endpoint() -> None:
    fake = FakeServers({"a": "refuse", "b": "500"})

    async def go():
        async with fake.engine(model="m", max_attempts=3, cooloff=0.01) as engine:
            await engine.complete("Q", Sampling())

    with pytest.raises(EndpointsDown) as err:
        run(go())
    assert "http://a:8000" in str(err.value) and "http://b:8000" in str(err.value)
    assert "connection refused" in str(err.value) and "HTTP 500" in str(err.value)


def test_openai_client_error_is_not_retried() -> None:
    fake = FakeServers({"a": "400", "b": "400"})

    async def go():
        async with fake.engine(model="m") as engine:
            await engine.complete("Q", Sampling())

    with pytest.raises(RequestRejected, match="scripted 400"):
        run(go())
    assert len(fake.requests) == 1


def test_openai_routes_to_least_outstanding() -> None:
    fake = FakeServers({"a": "ok", "b": "ok"}, delay=0.01)

    async def go():
        async with fake.engine(model="m") as engine:
            return await asyncio.gather(*(engine.complete("Q", Sampling()) for _ in range(10)))

    outs = run(go())
    hosts = [o.endpoint for o in outs]
    assert hosts.count("http://a:8000") == hosts.count("http://b:8000") == 5


def test_openai_caps_requests_per_endpoint_across_four_replicas() -> None:
    fake = FakeServers(dict.fromkeys("abcd", "ok"), delay=0.005)

    async def go():
        async with fake.engine(model="m", max_outstanding=2) as engine:
            return await asyncio.gather(*(engine.complete("Q", Sampling()) for _ in range(40)))

    outs = run(go())
    assert len(outs) == 40 and all(o.text == "Okay, let's see." for o in outs)
    assert fake.peak == dict.fromkeys("abcd", 2)  # each replica full, none past its cap
    assert sorted(Counter(o.endpoint for o in outs).values()) == [10, 10, 10, 10]


def test_openai_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_outstanding"):
        OpenAIEngine(["http://a"], max_outstanding=0)


def test_openai_prompt_logprobs_fail_over() -> None:
    fake = FakeServers({"a": "500", "b": "ok"})

    async def go():
        async with fake.engine(model="m", cooloff=60) as engine:
            return await engine.prompt_logprobs([5, 7, 9])

    assert run(go()) == [-0.7, -0.9]  # one per token after the first
    host, body = fake.requests[-1]
    assert host == "b" and body["prompt"] == [5, 7, 9] and body["prompt_logprobs"] == 0
    assert body["max_tokens"] == 1


def test_openai_unreachable_port_gives_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there

    async def go():
        async with OpenAIEngine([f"http://127.0.0.1:{port}"], model="m", max_attempts=2, cooloff=0.01) as e:
            await e.complete("Q", Sampling())

    with pytest.raises(EndpointsDown, match=f"127.0.0.1:{port}.*ConnectError"):
        run(go())


def test_openai_needs_endpoints() -> None:
    with pytest.raises(ValueError, match="at least one endpoint"):
        OpenAIEngine([])


def test_sampling_validates() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        Sampling(max_tokens=0)


# --- server launcher (a stand-in for the engine environment's python) ---------------------------------

_FAKE_VLLM = """#!{python}
# Takes vLLM's place: answers /health on --port and keeps a child, like an API server and its engine.
import http.server, os, subprocess, sys
args = sys.argv[1:]
port = int(args[args.index("--port") + 1])
child = subprocess.Popen(["sleep", "300"])
print("pid", os.getpid(), "child", child.pid, "nice", os.getpriority(os.PRIO_PROCESS, 0),
      "cpus", ",".join(map(str, sorted(os.sched_getaffinity(0)))),
      "bind", os.environ.get("VLLM_CPU_OMP_THREADS_BIND"),
      "kv", os.environ["VLLM_CPU_KVCACHE_SPACE"], "extra", os.environ.get("EXTRA"), "args", " ".join(args),
      flush=True)

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _fake_python(tmp_path: Path) -> Path:
    fake = tmp_path / "python"
    fake.write_text(_FAKE_VLLM.format(python=sys.executable))
    fake.chmod(0o755)
    return fake


def test_server_group_starts_replicas_and_stops_their_process_groups(tmp_path: Path) -> None:
    fake = _fake_python(tmp_path)
    spec = ServerSpec(
        tmp_path,
        name="m",
        max_model_len=128,
        kv_cache_gib=2,
        replicas=2,
        cpus_per_replica=1,
        first_cpu=0,
        nice=5,
        env={"EXTRA": "x"},
    )
    with ServerGroup([spec], log_dir=tmp_path / "logs", python=fake, startup_timeout=60) as group:
        urls = group.endpoints["m"]
        assert len(set(urls)) == 2
        assert all(httpx.get(u + "/health").status_code == 200 for u in urls)
        logs = [s.log_path.read_text() for s in group.servers]
        children = [int(log.split()[3]) for log in logs]
        assert all(f"nice {min(19, os.getpriority(os.PRIO_PROCESS, 0) + 5)} " in log for log in logs)
        if Path("/proc/self/autogroup").exists():  # the session's autogroup is lowered too
            groups = [Path(f"/proc/{s.process.pid}/autogroup").read_text() for s in group.servers]
            assert all("nice 5" in g for g in groups)
        assert all(_alive(pid) for pid in children)
    assert "cpus 0 bind 0-0 kv 2 extra x" in logs[0] and "cpus 1 bind 1-1 kv 2 extra x" in logs[1]
    assert "--served-model-name m --max-model-len 128" in logs[0] and "--enable-prefix-caching" in logs[0]
    assert not any(s.alive() for s in group.servers)
    assert not any(_alive(pid) for pid in children)


def test_group_cpu_seconds_counts_the_groups_processes_and_threads_only() -> None:
    # A new session: a process (its own group) whose child and second thread each spin for 0.4 s of CPU.
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\n"
    code = (
        "import subprocess, sys, threading\n"
        f"child = subprocess.Popen([sys.executable, '-c', {spin!r}])\n"
        f"thread = threading.Thread(target=exec, args=({spin!r},))\n"
        "thread.start(); thread.join(); child.wait(); print('done', flush=True); sys.stdin.read()\n"
    )
    own = group_cpu_seconds(os.getpgid(0))
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert process.stdout.readline() == b"done\n"
        # The thread's 0.4 s and the interpreter's start; the child has exited: no longer counted.
        assert 0.4 <= group_cpu_seconds(process.pid) < 2.0
    finally:
        process.communicate(b"")
    assert group_cpu_seconds(process.pid) == 0  # no live process left in the group
    assert group_cpu_seconds(os.getpgid(0)) - own < 0.4  # this test's group did not spin


def test_serve_forever_prints_endpoints_and_fails_when_a_server_dies(tmp_path: Path) -> None:
    lines: list[str] = []
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            spec = ServerSpec(tmp_path, name="m")
            serve_forever([spec], log_dir=tmp_path / "logs", python=_fake_python(tmp_path), echo=lines.append)
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=serve)
    thread.start()
    deadline = time.monotonic() + 60
    while "serving; Ctrl-C to stop" not in lines and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lines[0].startswith("m: http://127.0.0.1:")
    [log] = (tmp_path / "logs").glob("m-0-*.log")
    os.kill(int(log.read_text().split()[1]), signal.SIGKILL)  # the server crashes
    thread.join(30)
    assert isinstance(errors[0], ServerError) and "died" in str(errors[0])


def test_server_that_dies_at_start_raises_with_its_log(tmp_path: Path) -> None:
    # The test env has no vLLM: the module import fails the way a broken engine env would.
    group = ServerGroup([ServerSpec(tmp_path)], log_dir=tmp_path / "logs", python=Path(sys.executable))
    with pytest.raises(ServerError, match="exited with code 1(.|\n)*No module named 'vllm'"):
        group.start()
    assert not any(s.alive() for s in group.servers)


def test_server_spec_checks() -> None:
    with pytest.raises(ValueError, match="replicas"):
        ServerSpec(Path("m"), replicas=0)
    with pytest.raises(ValueError, match="whole number"):
        ServerSpec(Path("m"), kv_cache_gib=1.5)
    with pytest.raises(ServerError, match="model dir not found"):
        ServerGroup([ServerSpec(Path("/no/such/model"))], python=Path(sys.executable)).start()


def test_start_failure_hint_names_a_damaged_compile_cache():
    log = (
        "(Worker pid=1) ERROR failed with error 'ImportError: /root/.cache/vllm/torch_compile_cache/"
        "5983/inductor_cache/ri/crid.main.so: file too short', please check the stack trace above"
    )
    hint = start_failure_hint(log)
    assert "delete /root/.cache/vllm/torch_compile_cache and start again" in hint
    assert start_failure_hint("RuntimeError: CUDA out of memory") == ""


def test_server_spec_from_model_config_carries_every_field() -> None:
    fields = dict(
        max_model_len=512,
        kv_cache_gib=3,
        replicas=2,
        gpus_per_replica=1,
        cpus_per_replica=4,
        first_gpu=2,
        first_cpu=8,
        nice=7,
    )
    model = ModelConfig(
        path="models/tiny", served_name="tiny-served", extra_args=["--enforce-eager"], **fields
    )
    assert ServerSpec.from_model_config(model) == ServerSpec(
        Path("models/tiny"), name="tiny-served", extra_args=("--enforce-eager",), **fields
    )
    # Without a served name the servers know the model by its dir's name.
    assert ServerSpec.from_model_config(ModelConfig(path="models/tiny")).served_name == "tiny"


def test_server_spec_defaults_are_the_model_configs() -> None:
    spec, model = ServerSpec(Path("m")), ModelConfig(path="m")
    assert spec.kv_cache_gib == model.kv_cache_gib
    assert ServerSpec.from_model_config(model) == ServerSpec(Path("m"), name="m")


def test_an_untied_checkpoint_is_the_same_model(tiny_models, tmp_path):
    """What a vLLM-cpu server swaps in for a tied model (`swappable`): the LM head a weight of its own,
    equal to the embedding, in the one file (transformers and vLLM read it) or a sharded index."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM

    tied = tiny_models["student"]
    assert json.loads((tied / "config.json").read_text())["tie_word_embeddings"]
    ids = torch.tensor([[1, 7, 42, 9, 3, 100]])

    def logits(path: Path) -> torch.Tensor:
        with torch.no_grad():
            return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)(ids).logits

    sharded = tmp_path / "sharded"
    sharded.mkdir()
    for f in tied.iterdir():
        if f.name != "model.safetensors":
            (sharded / f.name).write_bytes(f.read_bytes())
    weights = load_file(tied / "model.safetensors")
    names = sorted(weights)
    shards = {name: f"model-0000{1 + (i % 2)}-of-00002.safetensors" for i, name in enumerate(names)}
    for shard in set(shards.values()):
        save_file({n: weights[n] for n in names if shards[n] == shard}, sharded / shard, {"format": "pt"})
    index = {"metadata": {"total_size": 0}, "weight_map": shards}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    for source in (tied, sharded):
        untied = untied_checkpoint(source, tmp_path / f"{source.name}-untied")
        assert not json.loads((untied / "config.json").read_text())["tie_word_embeddings"]
        assert torch.equal(logits(untied), logits(tied))
        head = (
            load_file(untied / "model.safetensors")
            if source is tied
            else load_file(untied / "lm_head.safetensors")
        )
        assert torch.equal(head["lm_head.weight"], weights["model.embed_tokens.weight"])
