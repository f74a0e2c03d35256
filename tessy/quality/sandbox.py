"""Isolation for model-written code, with bubblewrap (`bwrap`): its own PID, mount, network, IPC and
UTS namespaces, a read-only view of the system directories and the interpreter, one writable folder,
and no environment. Run as root, the code also runs as an unprivileged uid of its own, so it can
signal no process of ours and its process-count limit holds (the kernel does not count root's
processes against it). A fresh uid per run, because bwrap's namespace init outlives each run as a
zombie until the system's init reaps it, and those would count against the next run's limit.

Where bwrap cannot run, `find_sandbox` says why; code_exec then runs nothing unless unsafe execution
was asked for explicitly.
"""

from __future__ import annotations

import functools
import itertools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

FIRST_UID = 200_000  # sandbox uids: above any real account, not in /etc/passwd
N_UIDS = 50_000
INSIDE = "/sandbox"  # where the writable folder appears inside the sandbox
MAX_PROCESSES = 32  # threads count too; contest code needs one
SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/etc/alternatives")  # prlimit is in util-linux, in /usr
ENV = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "HOME": INSIDE,
    "TMPDIR": INSIDE,
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
}


@dataclass(frozen=True)
class Sandbox:
    """How code runs here: `python` is the interpreter inside; `reason` says why there is no sandbox."""

    bwrap: str | None
    python: str
    reason: str = ""

    @property
    def isolated(self) -> bool:
        return self.bwrap is not None


@functools.cache
def _prefix(python: str) -> list[str]:
    """Read-only binds for an interpreter outside the system directories (a venv's base, pyenv)."""
    base = subprocess.run(
        [python, "-I", "-S", "-c", "import sys; print(sys.base_prefix)"], capture_output=True, text=True
    ).stdout.strip()
    return [] if not base or base.startswith("/usr") else ["--ro-bind", base, base]


def command(sandbox: Sandbox, folder: Path, argv: list[str]) -> list[str]:
    """`argv` (run in `folder`, seen inside as /sandbox, with only ENV set) wrapped in the sandbox; as
    is without one."""
    if not sandbox.isolated:
        return argv
    binds = [arg for d in SYSTEM_DIRS for arg in ("--ro-bind-try", d, d)]
    return [
        sandbox.bwrap,
        *binds,
        *_prefix(sandbox.python),
        "--proc", "/proc",
        "--dev", "/dev",
        "--bind", str(folder), INSIDE,
        "--chdir", INSIDE,
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        *[arg for name, value in ENV.items() for arg in ("--setenv", name, value)],
        "--",
        # The process limit is set inside the new user namespace, where the kernel counts only the
        # sandbox's processes: set outside, it would count every process of the (non-root) user.
        "prlimit", f"--nproc={MAX_PROCESSES}",
        *argv,
    ]  # fmt: skip


_uids = itertools.count()
_uids_lock = threading.Lock()


def sandbox_uid() -> int | None:
    """A uid for one run, unused by recent runs (None unless we are root and can switch)."""
    if os.geteuid() != 0:
        return None
    with _uids_lock:
        n = next(_uids)
    return FIRST_UID + (os.getpid() * 1_000 + n) % N_UIDS


def limits(cpu_s: int, memory_mb: int, uid: int | None) -> Callable[[], None]:
    """The child's set-up before exec: resource limits, then the switch to `uid` (when given)."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    return apply


def prepare(folder: Path, uid: int | None) -> None:
    """Let the sandbox's uid write its folder (and nothing else)."""
    if uid is not None:
        os.chown(folder, uid, uid)


def _works(sandbox: Sandbox) -> str:
    """ "" when the sandbox runs the interpreter, otherwise what went wrong."""
    with tempfile.TemporaryDirectory(prefix="tessy-probe-") as tmp:
        uid = sandbox_uid()
        prepare(Path(tmp), uid)
        argv = command(sandbox, Path(tmp), [sandbox.python, "-I", "-S", "-c", "import json"])
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=30, preexec_fn=limits(5, 512, uid)
            )
        except (OSError, subprocess.SubprocessError) as e:
            return f"{type(e).__name__}: {e}"
        return "" if done.returncode == 0 else (done.stderr.strip().splitlines() or ["no output"])[-1]


@functools.cache
def find_sandbox() -> Sandbox:
    """The first interpreter bubblewrap can run here: this one, else the system's python3."""
    bwrap = shutil.which("bwrap")
    python = os.path.realpath(sys.executable)
    if bwrap is None:
        return Sandbox(None, python, "bubblewrap (bwrap) is not installed")
    reasons = []
    for candidate in dict.fromkeys([python, "/usr/bin/python3"]):
        if not Path(candidate).exists():
            continue
        sandbox = Sandbox(bwrap, candidate)
        if not (why := _works(sandbox)):
            return sandbox
        reasons.append(f"{candidate}: {why}")
    return Sandbox(None, python, "bubblewrap cannot run the interpreter: " + "; ".join(reasons))
