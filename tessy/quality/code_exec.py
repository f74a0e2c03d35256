"""Run an answer's Python code against stdin/stdout tests in a sandboxed subprocess.

Each test runs in a fresh interpreter (`python -I -S`: isolated, standard library only) with a
temporary directory as cwd, a minimal environment, CPU-time, memory and file-size limits
(resource.setrlimit), a wall-clock timeout, and no network where `unshare -rn` works (an empty
network namespace); without it the code still runs.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Status = Literal["passed", "wrong_answer", "timeout", "runtime_error", "no_code"]

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class ExecResult:
    status: Status
    n_passed: int
    n_tests: int
    detail: str = ""  # first failure: stderr tail, or expected vs got

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def extract_code(answer: str) -> str | None:
    """The last fenced code block of an answer (python-tagged or untagged), or None."""
    blocks = _FENCE.findall(answer)
    return blocks[-1] if blocks else None


@functools.cache
def _net_prefix() -> tuple[str, ...]:
    """Command prefix that cuts the network off, or () where namespaces are not allowed."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    try:
        ok = subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return (unshare, "-rn") if ok else ()


def _limits(cpu_s: int, memory_mb: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _same_output(got: str, expected: str) -> bool:
    """Line-wise comparison ignoring trailing spaces and trailing blank lines."""
    return [line.rstrip() for line in got.rstrip().splitlines()] == [
        line.rstrip() for line in expected.rstrip().splitlines()
    ]


def run_tests(
    code: str | None,
    inputs: Sequence[str],
    outputs: Sequence[str],
    *,
    timeout_s: float = 5.0,
    memory_mb: int = 512,
    stop_on_fail: bool = True,
) -> ExecResult:
    """Run `code` on each input and compare stdout with the expected output."""
    if len(inputs) != len(outputs):
        raise ValueError(f"{len(inputs)} inputs but {len(outputs)} outputs")
    if not code or not code.strip():
        return ExecResult("no_code", 0, len(inputs), "no code to run")
    n_passed, first_failure = 0, None
    with tempfile.TemporaryDirectory(prefix="tessy-exec-") as tmp:
        script = Path(tmp) / "main.py"
        script.write_text(code)
        for stdin, expected in zip(inputs, outputs, strict=True):
            status, detail = _run_one(script, stdin, expected, timeout_s, memory_mb)
            if status == "passed":
                n_passed += 1
                continue
            first_failure = first_failure or (status, detail)
            if stop_on_fail:
                break
    if first_failure is None:
        return ExecResult("passed", n_passed, len(inputs))
    return ExecResult(first_failure[0], n_passed, len(inputs), first_failure[1])


def _run_one(script: Path, stdin: str, expected: str, timeout_s: float, memory_mb: int) -> tuple[Status, str]:
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    # -I: isolated mode; -S: no site-packages (standard library only), which also halves start-up time.
    cmd = [*_net_prefix(), sys.executable, "-I", "-S", script.name]
    proc = subprocess.Popen(
        cmd,
        cwd=script.parent,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so a timeout kills any children too
        preexec_fn=functools.partial(_limits, int(timeout_s) + 1, memory_mb),
    )
    try:
        out, err = proc.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return "timeout", f"no answer within {timeout_s:g} s"
    if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):  # the CPU-time limit hit
        return "timeout", f"CPU time limit of {int(timeout_s) + 1} s"
    if proc.returncode != 0:
        return "runtime_error", f"exit {proc.returncode}: {err[-500:].strip()}"
    if not _same_output(out, expected):
        return "wrong_answer", f"expected {expected[:200]!r}, got {out[:200]!r}"
    return "passed", ""
