"""The stack's live plot: it samples every worker and Redis while a measurement runs in a thread."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from helpers import clients, stack
from helpers.errors import LabError
from helpers.experiments import live
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
    import signal
    import threading

    # The interrupt button, pressed until it is heard: a KeyboardInterrupt raised while the main thread runs a
    # finalizer (a ResourceWarning's __del__, say) is printed as "Exception ignored" and lost; one CI run hung so.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)   # what a kernel's SIGINT does
    lab = stack.start(APP, ["uvicorn"], nginx=False)

    def interrupt_until_the_stack_stops() -> None:
        while not lab.stopped:   # run_watched stops the stack as soon as an interrupt reaches it
            time.sleep(0.5)
            if not lab.stopped:
                _thread.interrupt_main()

    threading.Thread(target=interrupt_until_the_stack_stops, daemon=True).start()

    def runs_until_the_stack_stops() -> None:
        deadline = time.monotonic() + 60   # a lost interrupt fails the test below instead of hanging it
        while not lab.stopped and time.monotonic() < deadline:
            time.sleep(0.05)

    try:
        with pytest.raises(KeyboardInterrupt):
            live.run_watched(lab, runs_until_the_stack_stops)
        stopped_by_the_interrupt = lab.stopped
    finally:
        signal.signal(signal.SIGINT, previous)
        lab.stop()
    assert stopped_by_the_interrupt and not any(worker.running() for worker in lab.workers)


class _FakeWorker:
    """A worker's report, without a process: two live handlers of one watched function."""

    name = "uvicorn-1"

    def report(self) -> dict[str, Any]:
        return {"handlers": 2, "alive": {"redis_finally": 2}}


class _FakeLab:
    def __init__(self) -> None:
        self.workers = [_FakeWorker()]
        self.redis = None
        self.stopped = False


@pytest.mark.fast
def test_a_mark_takes_a_sample_first_so_the_plot_shows_what_the_step_starts_from():
    watch = live.StackWatch(_FakeLab())
    watch.mark("clients left")
    assert len(watch.samples) == 1 and watch.samples[0].alive == {"redis_finally": 2}
    assert watch.marks[0][1] == "clients left" and watch.marks[0][0] >= watch.samples[0].t


@pytest.mark.fast
def test_with_groups_the_plot_is_one_panel_per_version_titled_by_its_finding():
    groups = {"finally": ("redis_finally", "finally"), "bare": ("redis_bare", "bare")}
    watch = live.StackWatch(_FakeLab(), groups=groups)
    watch.sample()
    watch.findings["finally"] = "finally: 2 → 0 handlers"
    axes = watch.figure().axes
    assert len(axes) == 2 and axes[0].get_title(loc="left") == "finally: 2 → 0 handlers"
    assert axes[1].get_title(loc="left") == "bare" and axes[0].get_legend() is None
