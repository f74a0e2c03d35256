import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tessy.quality.code_exec import extract_code, run_tests
from tessy.quality.measure import code_exec_mode
from tessy.quality.sandbox import ENV, INSIDE, MAX_PROCESSES, Sandbox, find_sandbox

ISOLATED = find_sandbox().isolated

ADD = "a, b = map(int, input().split())\nprint(a + b)\n"


def test_extract_code_takes_the_last_fenced_block():
    answer = "First try:\n```python\nprint(1)\n```\nBetter:\n```python\nprint(2)\n```\nDone."
    assert extract_code(answer) == "print(2)\n"
    assert extract_code("```\nprint(3)\n```") == "print(3)\n"
    assert extract_code("no code here") is None


def test_passing_code():
    result = run_tests(ADD, ["1 2\n", "5 7\n"], ["3\n", "12"])
    assert result.passed and result.n_passed == 2 and result.n_tests == 2


def test_wrong_answer_reports_expected_and_got():
    result = run_tests(ADD, ["1 2\n", "5 7\n"], ["3\n", "13\n"], stop_on_fail=False)
    assert result.status == "wrong_answer" and result.n_passed == 1
    assert "13" in result.detail and "12" in result.detail


def test_timeout_is_enforced():
    start = time.monotonic()
    result = run_tests("while True:\n    pass\n", ["\n"], ["\n"], timeout_s=1)
    assert result.status == "timeout"
    assert time.monotonic() - start < 5


def test_crash_is_a_runtime_error():
    result = run_tests("raise ValueError('boom')\n", ["\n"], ["\n"])
    assert result.status == "runtime_error" and "boom" in result.detail


def test_memory_limit():
    result = run_tests("x = bytearray(2 * 1024 ** 3)\nprint(1)\n", ["\n"], ["1\n"], memory_mb=256)
    assert result.status == "runtime_error" and "MemoryError" in result.detail


def test_missing_code():
    assert run_tests(None, ["1\n"], ["1\n"]).status == "no_code"
    with pytest.raises(ValueError):
        run_tests(ADD, ["1 2\n"], [])


def test_without_a_sandbox_nothing_runs_unless_allowed(monkeypatch):
    bare = Sandbox(None, sys.executable, "bubblewrap (bwrap) is not installed")
    monkeypatch.setattr("tessy.quality.code_exec.find_sandbox", lambda: bare)
    refused = run_tests(ADD, ["1 2\n"], ["3\n"])
    assert refused.status == "not_run" and "bwrap" in refused.detail
    assert run_tests(ADD, ["1 2\n"], ["3\n"], allow_unsafe=True).passed
    monkeypatch.setattr("tessy.quality.measure.find_sandbox", lambda: bare)
    run, note = code_exec_mode(True, False)
    assert not run and note.startswith("code NOT run: bubblewrap (bwrap) is not installed")
    run, note = code_exec_mode(True, True)
    assert run and note.startswith("UNSAFE")


# Attacks from model-written code. Each must stay inside the sandbox; on a machine without one the
# code is not run at all (previous test), so these only run where bubblewrap works.
attack = pytest.mark.skipif(not ISOLATED, reason=f"no sandbox here: {find_sandbox().reason}")


@attack
def test_runs_in_its_own_folder_with_only_the_sandbox_environment(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secretThatMustStayOutside")
    code = "import os\nprint(os.getcwd(), sorted(set(os.environ) - {'PWD'}))\n"
    assert run_tests(code, ["\n"], [f"{INSIDE} {sorted(ENV)}\n"]).passed


@attack
def test_writes_outside_its_folder_fail(tmp_path):
    target = tmp_path / "escaped.txt"
    code = (
        f"import os\nfor p in [{str(target)!r}, '/tmp/tessy-escape', os.path.expanduser('~/tessy-escape')]:\n"
        "    try:\n        open(p, 'w').write('x'); print('wrote', p)\n"
        "    except OSError:\n        print('refused')\n"
    )
    result = run_tests(code, ["\n"], ["refused\nrefused\nwrote /sandbox/tessy-escape\n"])
    assert result.passed, result.detail
    assert not target.exists() and not Path("/tmp/tessy-escape").exists()


@attack
def test_kill_every_process_reaches_none_of_ours():
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        result = run_tests("import os\nos.kill(-1, 9)\nprint('done')\n", ["\n"], ["done\n"])
        assert bystander.poll() is None  # still running: the code saw no process of ours
        assert result.status in ("passed", "runtime_error", "timeout")
    finally:
        bystander.kill()


@attack
def test_a_detached_child_does_not_outlive_the_run():
    marker = "31.4159"
    code = (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n"
        f"    os.execv('/bin/sleep', ['sleep', '{marker}'])\nprint('parent done')\n"
    )
    assert run_tests(code, ["\n"], ["parent done\n"]).passed
    time.sleep(1)
    assert not [p for p in Path("/proc").glob("[0-9]*/cmdline") if _cmdline(p) == f"sleep {marker}"]


def _cmdline(path: Path) -> str:
    try:
        return path.read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


@attack
def test_a_fork_bomb_is_contained():
    code = (
        "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
        "            time.sleep(3)\n            os._exit(0)\n        n += 1\n"
        f"except OSError:\n    print('stopped', n <= {MAX_PROCESSES})\n"
    )
    result = run_tests(code, ["\n"], ["stopped True\n"], timeout_s=10)
    assert result.passed, result.detail


@attack
def test_no_network():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    code = (
        "import socket\ntry:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('connected')\n"
        "except OSError:\n    print('offline')\n"
    )
    try:
        assert run_tests(code, ["\n"], ["offline\n"]).passed
    finally:
        server.close()


@attack
def test_secrets_in_our_environment_are_out_of_reach(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secretThatMustStayOutside")
    code = (
        "import os\nseen = []\nfor p in ['/proc/1/environ', '/proc/self/environ']:\n"
        "    try:\n        seen.append(open(p, 'rb').read().decode(errors='replace'))\n"
        "    except OSError:\n        pass\n"
        "print('leak' if any('hf_secret' in s for s in seen) else 'clean')\n"
    )
    result = run_tests(code, ["\n"], ["clean\n"])
    assert result.passed, result.detail


@attack
def test_two_gigabytes_of_memory_are_refused():
    result = run_tests("x = bytearray(2 * 1024 ** 3)\nprint(len(x))\n", ["\n"], ["\n"], memory_mb=512)
    assert result.status == "runtime_error" and "MemoryError" in result.detail


@attack
def test_many_runs_in_a_row_all_run():
    """Each run's sandbox init lingers as a zombie until the system reaps it; runs must not inherit them
    as processes counted against their own limit (seen as "bwrap: Can't fork" on the 6th run)."""
    results = [run_tests("print(input())", ["a\n"] * 10, ["a\n"] * 10, stop_on_fail=False) for _ in range(8)]
    assert all(r.passed for r in results), [r.detail for r in results if not r.passed][:1]
