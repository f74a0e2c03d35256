"""Progress lines at a steady pace while a step runs, and a last one when it ends."""

import time

import pytest

from tessy.progress import Steps, reporting


def test_lines_come_while_the_block_runs_and_once_at_its_end():
    lines: list[str] = []
    steps = Steps("job")
    with reporting(lines.append, steps.line, every_s=0.05):
        steps.begin("counting", total=3)
        for _ in range(3):
            time.sleep(0.1)
            steps.advance()
    assert len(lines) >= 3  # beats during the 0.3 s, whatever the machine's load
    assert lines[-1].startswith("job: counting 3/3 (")


def test_a_failing_block_still_says_how_far_it_got():
    lines: list[str] = []
    steps = Steps("job")
    with pytest.raises(ValueError), reporting(lines.append, steps.line, every_s=60):
        steps.begin("parsing", total=10)
        steps.advance(4)
        raise ValueError("bad row")
    assert lines == [lines[-1]] and lines[-1].startswith("job: parsing 4/10")


def test_no_report_no_thread():
    with reporting(None, lambda: pytest.fail("no line without a report")):
        pass
