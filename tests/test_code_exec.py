import socket
import time

import pytest

from tessy.quality.code_exec import _net_prefix, extract_code, run_tests

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


def test_runs_in_a_temporary_directory_with_a_minimal_environment():
    code = "import os\nprint(os.path.basename(os.getcwd()).startswith('tessy-exec-'), 'HOME' in os.environ)\n"
    assert run_tests(code, ["\n"], ["True False\n"]).passed


@pytest.mark.skipif(not _net_prefix(), reason="network namespaces are not available here")
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
