"""Progress lines at a steady pace for logs a person watches (the Prefect UI, a worker's terminal):
while a long step runs, a background thread passes its current state on every half minute, whether
or not the step has finished anything in between."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

Report = Callable[[str], None]


@contextmanager
def reporting(report: Report | None, line: Callable[[], str], every_s: float = 30.0) -> Iterator[None]:
    """Pass `line()` to `report` every `every_s` seconds while the block runs, and once when it ends
    (also on an error, so the log says how far it got). Nothing happens when `report` is None."""
    if report is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            report(line())

    thread = threading.Thread(target=beat, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        report(line())


@dataclass
class Steps:
    """Where a job of several steps is (e.g. QA: code tests, then the student NLL), for `reporting`."""

    job: str
    step: str = "starting"
    done: int = 0
    total: int = 0
    started: float = field(default_factory=time.monotonic)

    def begin(self, step: str, total: int = 0) -> None:
        self.step, self.done, self.total = step, 0, total

    def advance(self, n: int = 1) -> None:
        self.done += n

    def line(self) -> str:
        count = f" {self.done}/{self.total}" if self.total else ""
        return f"{self.job}: {self.step}{count} ({time.monotonic() - self.started:.0f} s in)"
