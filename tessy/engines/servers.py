"""Start and stop real vLLM OpenAI servers for local model dirs, from the separate engine environment
(vLLM cannot share an environment with prefect). Each server runs in its own process group on a free
loopback port and logs to a file; we stop exactly those groups, also on Ctrl-C or an exception."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tessy.config import ModelConfig, declared_default

# Looked up in this order: $TESSY_VLLM_PYTHON, ./.venv-vllm, the checkout's .venv-vllm.
VLLM_PYTHON_ENV = "TESSY_VLLM_PYTHON"
PR_SET_PDEATHSIG = 1  # prctl(2)
_CHECKOUT = Path(__file__).resolve().parents[2]


# vLLM offers the endpoints `swap_weights` calls only in its development mode. They change the model,
# so the server should listen where only this pipeline reaches it (loopback, as `launch` binds it).
SWAP_WEIGHTS_ENV = {"VLLM_SERVER_DEV_MODE": "1"}


class ServerError(RuntimeError):
    """A vLLM server failed to start or died."""


@dataclass(frozen=True)
class ServerSpec:
    """One model to serve, possibly as several data-parallel replicas. Defaults are ModelConfig's."""

    model: Path
    name: str | None = None  # --served-model-name; defaults to the model dir's name
    max_model_len: int = declared_default(ModelConfig, "max_model_len")
    # VLLM_CPU_KVCACHE_SPACE (whole GiB); ignored by GPU builds.
    kv_cache_gib: int = declared_default(ModelConfig, "kv_cache_gib")
    replicas: int = declared_default(ModelConfig, "replicas")
    # Replica i gets CUDA devices first_gpu + [i*g, (i+1)*g) with g = gpus_per_replica, and runs on
    # CPUs first_cpu + [i*c, (i+1)*c) with c = cpus_per_replica (all its processes; on CPU builds its
    # OpenMP threads bind to them). The offsets keep two models on one node apart. 0 per replica leaves
    # the choice to vLLM (on CPU every server then binds the same first core).
    gpus_per_replica: int = declared_default(ModelConfig, "gpus_per_replica")
    cpus_per_replica: int = declared_default(ModelConfig, "cpus_per_replica")
    first_gpu: int = declared_default(ModelConfig, "first_gpu")
    first_cpu: int = declared_default(ModelConfig, "first_cpu")
    # CPU priority of the server's processes (and of its Linux autogroup, which otherwise gets an equal
    # share whatever the nice): on a machine where the servers take every core, a positive value keeps
    # the coordinator's event loop and boundary predictors from waiting behind them.
    nice: int = declared_default(ModelConfig, "nice")
    extra_args: tuple[str, ...] = tuple(declared_default(ModelConfig, "extra_args"))
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the server process

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {self.replicas}")
        if self.kv_cache_gib < 1 or self.kv_cache_gib != int(self.kv_cache_gib):
            # vLLM-cpu parses VLLM_CPU_KVCACHE_SPACE as an int and refuses "1.5" or "1.0".
            raise ValueError(f"kv_cache_gib must be a whole number >= 1, got {self.kv_cache_gib}")
        if not 0 <= self.nice <= 19:
            raise ValueError(f"nice must be in [0, 19], got {self.nice}")

    @classmethod
    def from_model_config(cls, model: ModelConfig) -> ServerSpec:
        return cls(
            model=Path(model.path),
            name=model.name_on_server,
            max_model_len=model.max_model_len,
            kv_cache_gib=model.kv_cache_gib,
            replicas=model.replicas,
            gpus_per_replica=model.gpus_per_replica,
            cpus_per_replica=model.cpus_per_replica,
            first_gpu=model.first_gpu,
            first_cpu=model.first_cpu,
            nice=model.nice,
            extra_args=tuple(model.extra_args),
        )

    @property
    def served_name(self) -> str:
        return self.name or Path(self.model).name


@dataclass
class Server:
    spec: ServerSpec
    replica: int
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, n_lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n_lines:])

    def alive(self) -> bool:
        """Whether any process of this server's group is left (the API server or an engine worker)."""
        self.process.poll()  # reap the leader, or its zombie keeps the group alive
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def cpu_seconds(self) -> float:
        """CPU time (user and system) this server's live processes have used so far: the API server,
        the engine core and its workers. Linux only (/proc)."""
        return group_cpu_seconds(self.process.pid)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop this server's process group: SIGTERM, then SIGKILL for whatever is left after timeout.
        The whole group, because engine workers can outlive a crashed API server."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            if not self.alive():
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            deadline = time.monotonic() + wait
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.1)
        if self.alive():
            raise ServerError(f"process group {self.process.pid} of {self.url} survived SIGKILL")


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user and system, in seconds) used so far by the live processes of process group
    `pgid`, all their threads included, from /proc/PID/stat."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):  # a process may exit between the listing and the read
            # After the command name (which may hold spaces and parentheses): state, ppid, pgrp, ...,
            # utime and stime, fields 12 and 13 counted from the state.
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[2]) == pgid:
                ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def vllm_python() -> Path:
    """The engine environment's interpreter."""
    if env := os.environ.get(VLLM_PYTHON_ENV):
        return Path(env)
    for root in (Path.cwd(), _CHECKOUT):
        candidate = root / ".venv-vllm" / "bin" / "python"
        if candidate.exists():
            return candidate
    raise ServerError(
        f"no vLLM environment: set {VLLM_PYTHON_ENV} or create .venv-vllm "
        f"(looked in {Path.cwd()} and {_CHECKOUT})"
    )


def free_port(taken: frozenset[int] = frozenset()) -> int:
    """A loopback port nothing listens on, other than the ones handed out already (`taken`)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in taken:
            return port


@functools.cache
def is_cpu_build(python: Path) -> bool:
    """Whether the engine environment holds the CPU build of vLLM (the `vllm-cpu` distribution)."""
    probe = "import importlib.metadata as m; m.version('vllm-cpu')"
    return subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0


# vLLM-cpu's KV blocks default to 128 tokens (GPU builds: 16), and its prefix cache keeps whole blocks
# only. TESSY asks each model again after every span with the whole text so far, so with 128 a
# re-prompt computes up to 127 cached tokens again: 32 raised the prefix-cache hit rate from 0.74 to
# 0.915 under TESSY and from 0.67 to 0.848 under teacher-only (bench/synthesis.py, 64 questions, 3
# rounds). The CPU backend wants multiples of 32.
CPU_BLOCK_SIZE = 32


def cpu_workarounds(spec: ServerSpec) -> list[str]:
    """vLLM-cpu 0.32 kills its engine when a request with a seed is prefilled in chunks (its CPU
    generator cannot rewind: "CPU Generator does not use offset"), and we seed every request. So
    prompts are prefilled whole: chunked prefill off, a batch budget of at least one full context.
    And blocks of CPU_BLOCK_SIZE tokens. Flags in `extra_args` come later on the command line and win."""
    return [
        "--no-enable-chunked-prefill",
        "--max-num-batched-tokens",
        str(cpu_batch_budget(spec.max_model_len)),
        "--block-size",
        str(CPU_BLOCK_SIZE),
    ]


def cpu_batch_budget(max_model_len: int) -> int:
    """Tokens a CPU server's step may take: a whole prompt, since prefill is never chunked there."""
    return max(max_model_len, 2048)


def server_command(spec: ServerSpec, port: int, python: Path) -> list[str]:
    return [
        str(python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(spec.model),
        "--served-model-name",
        spec.served_name,
        "--max-model-len",
        str(spec.max_model_len),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--enable-prefix-caching",
        *(cpu_workarounds(spec) if is_cpu_build(python) else []),
        *spec.extra_args,
    ]


def _devices(first: int, per_replica: int, replica: int) -> range:
    """The device ids of one replica: `per_replica` of them from `first` + replica * per_replica."""
    start = first + replica * per_replica
    return range(start, start + per_replica)


def launch(
    spec: ServerSpec, replica: int, log_dir: Path, python: Path | None = None, port: int | None = None
) -> Server:
    """Start one replica without waiting for it; see `wait_healthy`."""
    if not Path(spec.model).exists():
        raise ServerError(f"model dir not found: {spec.model}")
    python = python or vllm_python()
    port = port or free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{spec.served_name}-{replica}-{port}.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(int(spec.kv_cache_gib)), **spec.env}
    if gpus := _devices(spec.first_gpu, spec.gpus_per_replica, replica):
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
    command = server_command(spec, port, python)
    if cpus := _devices(spec.first_cpu, spec.cpus_per_replica, replica):
        env["VLLM_CPU_OMP_THREADS_BIND"] = f"{cpus[0]}-{cpus[-1]}"
        # The API server and engine core too: left free, vLLM's busy-polling engine core takes its time
        # from whatever else runs on the other cores (the other model's server, the predictors).
        command = ["taskset", "--cpu-list", f"{cpus[0]}-{cpus[-1]}", *command]
    if spec.nice:
        command = ["nice", "-n", str(spec.nice), *command]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # own process group: we can stop it and only it
            preexec_fn=_die_with_parent,
        )
    if spec.nice:
        _lower_autogroup(process.pid, spec.nice)
    return Server(spec, replica, port, log_path, process)


def _die_with_parent() -> None:
    """In the server's process, before exec: SIGTERM it when the process (strictly, the thread) that
    started it dies, even by SIGKILL, so a killed flow leaves no server holding GPUs. vLLM's API
    server stops its engine processes on SIGTERM. Linux only; elsewhere a no-op."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _lower_autogroup(pid: int, nice: int) -> None:
    """Give the new session's autogroup the nice value too: with autogroup scheduling on, CPU time is
    shared between sessions first, so a process's own nice only counts inside its session. Where the
    kernel has no autogroups there is nothing to do."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))


_DAMAGED_COMPILE_CACHE = re.compile(r"(/\S*?/torch_compile_cache)/\S*: file too short")


def start_failure_hint(log: str) -> str:
    """A known cause of a failed start, read from the server log, and what to do about it ("" if none)."""
    if match := _DAMAGED_COMPILE_CACHE.search(log):
        return (
            f"\nHint: vLLM's compile cache holds a truncated file (a server killed while compiling?); "
            f"delete {match.group(1)} and start again."
        )
    return ""


def wait_healthy(servers: Sequence[Server], timeout: float = 600.0) -> None:
    """Block until every server answers /health; raise with the log tail if one dies or times out."""
    pending = list(servers)
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while pending:
            for server in list(pending):
                if (code := server.process.poll()) is not None:
                    tail = server.log_tail()
                    raise ServerError(
                        f"vLLM server for {server.spec.model} exited with code {code} during start; "
                        f"log {server.log_path}:\n{tail}{start_failure_hint(tail)}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get(server.url + "/health").status_code == 200:
                        pending.remove(server)
            if pending and time.monotonic() > deadline:
                server = pending[0]
                raise ServerError(
                    f"vLLM server for {server.spec.model} not healthy after {timeout:.0f}s; "
                    f"log {server.log_path}:\n{server.log_tail()}"
                )
            if pending:
                time.sleep(0.5)


def swap_weights(url: str, model_dir: Path, timeout: float = 600.0) -> None:
    """Load the weights in `model_dir`, a checkpoint of the served architecture (a fine-tune of the
    served model, say), into the running server at `url`, in place, and drop its prefix cache, whose
    KV the old weights computed. Far cheaper than a new server (a fresh vLLM start is 30-40 s here,
    minutes for a large model). The server must have been started with SWAP_WEIGHTS_ENV, and both
    checkpoints passed through `swappable`."""
    rpc = {"method": "reload_weights", "kwargs": {"weights_path": str(model_dir)}}
    with httpx.Client(base_url=url, timeout=timeout) as client:
        reply = client.post("/collective_rpc", json=rpc)
        if reply.status_code == 404:
            raise ServerError(
                f"{url} cannot swap weights: start it with {SWAP_WEIGHTS_ENV} in its environment"
            )
        if reply.status_code != 200:
            raise ServerError(f"{url} failed to load the weights of {model_dir}: {reply.text[:500]}")
        if not client.post("/reset_prefix_cache").json().get("success"):
            raise ServerError(f"{url} kept its prefix cache after a weight swap (requests still running?)")


def swappable(model_dir: Path, out: Path, python: Path | None = None) -> Path:
    """`model_dir`, or, where a server cannot take its weights by `swap_weights` faithfully, the same
    model written to `out` in a form it can. vLLM-cpu packs the LM head's weight once, at load; a
    head tied to the input embedding is not loaded again by a swap, so it would keep the old weights
    while the embedding changes. An untied copy's head is loaded, and packed, with the rest."""
    tied = json.loads((model_dir / "config.json").read_text()).get("tie_word_embeddings", False)
    return untied_checkpoint(model_dir, out) if tied and is_cpu_build(python or vllm_python()) else model_dir


_EMBEDDING = "embed_tokens.weight"  # the input embedding's name, after its module prefix


def untied_checkpoint(model_dir: Path, out: Path) -> Path:
    """A copy of `model_dir` at `out` whose LM head is a weight of its own, equal to the tied input
    embedding: the same model, a little larger. Returns `out`."""
    from safetensors.torch import load_file, save_file  # here, not at the top: it loads torch

    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(model_dir, out)
    config = json.loads((out / "config.json").read_text())
    config["tie_word_embeddings"] = False
    (out / "config.json").write_text(json.dumps(config, indent=2))
    index_path = out / "model.safetensors.index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else None
    weight_map = index["weight_map"] if index else {}
    shard = next((f for k, f in weight_map.items() if k.endswith(_EMBEDDING)), "model.safetensors")
    weights = load_file(out / shard) if (out / shard).exists() else {}
    key = next((k for k in weights if k.endswith(_EMBEDDING)), None)
    if key is None:
        raise ServerError(f"{model_dir} has no *{_EMBEDDING} in its safetensors files")
    head = {"lm_head.weight": weights[key].clone()}
    if index is None:  # one file: the head joins it (transformers reads only this file when it exists)
        save_file({**weights, **head}, out / shard, metadata={"format": "pt"})
    else:  # sharded: the head gets a file of its own in the map
        save_file(head, out / "lm_head.safetensors", metadata={"format": "pt"})
        weight_map["lm_head.weight"] = "lm_head.safetensors"
        index_path.write_text(json.dumps(index, indent=2))
    return out


def server_metric(url: str, name: str) -> float:
    """A vLLM server's Prometheus metric `name` (e.g. `vllm:generation_tokens_total`), summed over its
    label sets; 0 when the server does not report it."""
    text = httpx.get(url + "/metrics", timeout=10).text
    pattern = rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$"
    return sum(float(v) for v in re.findall(pattern, text, re.M))


class ServerGroup:
    """Context manager over the servers for several specs; `endpoints` maps served name -> URLs."""

    def __init__(
        self,
        specs: Sequence[ServerSpec],
        *,
        log_dir: Path = Path(".tessy/logs"),
        python: Path | None = None,
        startup_timeout: float = 600.0,
    ) -> None:
        names = [s.served_name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"served model names must be unique, got {names}")
        self.specs = list(specs)
        self.log_dir = Path(log_dir)
        self.python = python
        self.startup_timeout = startup_timeout
        self.servers: list[Server] = []

    @property
    def endpoints(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {s.served_name: [] for s in self.specs}
        for server in self.servers:
            out[server.spec.served_name].append(server.url)
        return out

    def start(self) -> dict[str, list[str]]:
        try:
            # All replicas start in parallel; model loading dominates start time.
            for spec in self.specs:
                for replica in range(spec.replicas):
                    port = free_port(frozenset(s.port for s in self.servers))
                    self.servers.append(launch(spec, replica, self.log_dir, self.python, port))
            wait_healthy(self.servers, self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        return self.endpoints

    def dead(self) -> list[Server]:
        return [s for s in self.servers if s.process.poll() is not None]

    def stop(self) -> None:
        for server in self.servers:  # all shut down in parallel, then wait for each
            if server.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.process.pid, signal.SIGTERM)
        for server in self.servers:
            server.stop()

    def __enter__(self) -> ServerGroup:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serve(
    specs: Sequence[ServerSpec],
    *,
    log_dir: Path = Path(".tessy/logs"),
    python: Path | None = None,
    startup_timeout: float = 600.0,
) -> Iterator[dict[str, list[str]]]:
    """Serve `specs` for the duration of the block; yields served name -> endpoint URLs."""
    with ServerGroup(specs, log_dir=log_dir, python=python, startup_timeout=startup_timeout) as group:
        yield group.endpoints


def serve_forever(
    specs: Sequence[ServerSpec],
    *,
    log_dir: Path = Path(".tessy/logs"),
    python: Path | None = None,
    echo: Callable[[str], None] = print,
) -> None:
    """Start the servers, print their endpoints, and keep them up until Ctrl-C / SIGTERM or one dies."""

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Turn SIGTERM into the Ctrl-C path so the servers are stopped either way (main thread only).
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main else None
    try:
        with ServerGroup(specs, log_dir=log_dir, python=python) as group:
            for name, urls in group.endpoints.items():
                echo(f"{name}: {' '.join(urls)}")
            echo("serving; Ctrl-C to stop")
            while not (dead := group.dead()):
                time.sleep(1.0)
            server = dead[0]
            raise ServerError(
                f"vLLM server {server.url} for {server.spec.model} died; log:\n{server.log_tail()}"
            )
    except KeyboardInterrupt:
        echo("stopped")
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
