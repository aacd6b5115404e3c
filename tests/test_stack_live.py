"""The stack's live plot: it samples every worker and Redis while a measurement runs in a thread."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from helpers import clients, stack
from helpers.errors import LabError
from helpers.stack import live
from helpers.stack.processes import running_children

APP = "helpers.apps.production:app"


@pytest.fixture(autouse=True)
def no_stack_left() -> Iterator[None]:
    yield
    stack.stop_current()
    assert running_children() == []


def test_the_plot_samples_each_worker_and_redis_while_the_measurement_runs():
    lab = stack.start(APP, ["uvicorn"], nginx=False, redis=True)

    def two_clients_for_a_while() -> str:
        group = clients.connect(lab.url("/ws/echo"), 2)
        time.sleep(1.0)
        clients.leave(group, "fin")
        return "measured"

    result, watch = live.run_watched(lab, two_clients_for_a_while)
    assert result == "measured"
    assert max(s.handlers["uvicorn-1"] for s in watch.samples) == 2
    assert all(s.redis_clients is not None for s in watch.samples)
    assert watch.image.frames >= 1 and len(watch.figure().axes) == 2


def test_an_error_of_the_measurement_is_raised_not_hidden_by_the_sampler():
    lab = stack.start(APP, ["uvicorn"], nginx=False)

    def fails() -> None:
        raise LabError("the measurement's own error")

    with pytest.raises(LabError, match="the measurement's own error"):
        live.run_watched(lab, fails)


def test_sampling_stops_when_the_stack_is_stopped_under_it():
    lab = stack.start(APP, ["uvicorn"], nginx=False)

    def stops_the_stack() -> int:
        time.sleep(0.3)
        lab.stop()
        time.sleep(0.3)
        return 1

    result, watch = live.run_watched(lab, stops_the_stack)
    assert result == 1 and watch.samples and len(watch.figure().axes) == 1


def test_an_interrupt_stops_the_stack_and_is_raised_once_the_measurement_ended():
    import _thread
    import threading

    lab = stack.start(APP, ["uvicorn"], nginx=False)
    threading.Timer(0.5, _thread.interrupt_main).start()

    def runs_until_the_stack_stops() -> None:
        while not lab.stopped:
            time.sleep(0.05)

    with pytest.raises(KeyboardInterrupt):
        live.run_watched(lab, runs_until_the_stack_stops)
    assert lab.stopped and not any(worker.running() for worker in lab.workers)
