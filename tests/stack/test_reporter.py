"""The reporter inside each worker process answers in the observers' message format (ws_leakcheck.wire)."""

import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.stack.reporter import Reported, read_report
from ws_leakcheck import wire


async def _app(scope, receive, send):
    pass


@pytest.fixture
def path() -> Iterator[str]:
    folder = Path(tempfile.mkdtemp(prefix="lab-reporter-"))  # AF_UNIX paths are short: not pytest's tmp_path
    yield str(folder / "report.sock")
    shutil.rmtree(folder)


@pytest.fixture
def reporter(path) -> Iterator[Reported]:
    reported = Reported(_app, path, watch=("feed",))
    yield reported
    reported.close()
    assert not any(thread.name == "lab-reporter" for thread in threading.enumerate())


def test_the_reporter_answers_a_report_request_with_the_workers_counts(reporter, path):
    report = read_report(path, timeout=10.0)
    assert {key: report[key] for key in ("handlers", "opened", "ended", "sends", "alive")} == {
        "handlers": 0, "opened": 0, "ended": 0, "sends": 0, "alive": {"feed": 0}}


def test_the_reporter_answers_an_unknown_request_with_a_usage_failure(reporter, path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10.0)
        sock.connect(path)
        sock.sendall(wire.encode({"id": 4, "op": "restart"}).encode())
        answer = wire.decode(sock.makefile("rb").readline())
    assert answer == {"id": 4, "error": "usage", "message": "Unknown request 'restart'."}
