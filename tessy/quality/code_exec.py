"""Run an answer's Python code against stdin/stdout tests, isolated (tessy/quality/sandbox.py).

Each test runs in a fresh interpreter (`python -I -S`: isolated, standard library only) inside the
sandbox, with a private folder as cwd, no environment, CPU-time, memory, file-size and process-count
limits and a wall-clock timeout. Where no sandbox can run, nothing is run (status `not_run`, with
the reason) unless the caller allows unsafe execution explicitly.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tessy.quality.sandbox import ENV, Sandbox, command, find_sandbox, limits, prepare, sandbox_uid

Status = Literal["passed", "wrong_answer", "timeout", "runtime_error", "no_code", "not_run"]

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
    allow_unsafe: bool = False,
) -> ExecResult:
    """Run `code` on each input and compare stdout with the expected output. Without a sandbox the
    code is not run (`not_run`), unless `allow_unsafe`."""
    if len(inputs) != len(outputs):
        raise ValueError(f"{len(inputs)} inputs but {len(outputs)} outputs")
    if not code or not code.strip():
        return ExecResult("no_code", 0, len(inputs), "no code to run")
    sandbox = find_sandbox()
    if not sandbox.isolated and not allow_unsafe:
        return ExecResult("not_run", 0, len(inputs), f"no sandbox: {sandbox.reason}")
    n_passed, first_failure = 0, None
    with tempfile.TemporaryDirectory(prefix="tessy-exec-") as tmp:
        folder = Path(tmp)
        uid = sandbox_uid() if sandbox.isolated else None
        prepare(folder, uid)
        (folder / "main.py").write_text(code)
        for stdin, expected in zip(inputs, outputs, strict=True):
            status, detail = _run_one(sandbox, folder, uid, stdin, expected, timeout_s, memory_mb)
            if status == "passed":
                n_passed += 1
                continue
            first_failure = first_failure or (status, detail)
            if stop_on_fail:
                break
    if first_failure is None:
        return ExecResult("passed", n_passed, len(inputs))
    return ExecResult(first_failure[0], n_passed, len(inputs), first_failure[1])


def _run_one(
    sandbox: Sandbox,
    folder: Path,
    uid: int | None,
    stdin: str,
    expected: str,
    timeout_s: float,
    memory_mb: int,
) -> tuple[Status, str]:
    argv = command(sandbox, folder, [sandbox.python, "-I", "-S", "main.py"])
    proc = subprocess.Popen(
        argv,
        cwd=folder,
        env={**ENV, "HOME": str(folder), "TMPDIR": str(folder)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so a timeout kills any children too
        preexec_fn=limits(int(timeout_s) + 1, memory_mb, uid),
    )
    try:
        out, err = proc.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return "timeout", f"no answer within {timeout_s:g} s"
    # bwrap reports a signal that ended the code as 128 + signal, a plain child as -signal.
    rc = proc.returncode
    signalled = -rc if rc < 0 else rc - 128 if sandbox.isolated and rc > 128 else None
    if signalled in (signal.SIGXCPU, signal.SIGKILL):  # the CPU-time limit hit
        return "timeout", f"CPU time limit of {int(timeout_s) + 1} s"
    if proc.returncode != 0:
        return "runtime_error", f"exit {proc.returncode}: {err[-500:].strip()}"
    if not _same_output(out, expected):
        return "wrong_answer", f"expected {expected[:200]!r}, got {out[:200]!r}"
    return "passed", ""
