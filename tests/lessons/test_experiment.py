import threading
import typing

import pytest

from helpers import clients
from helpers.apps import seed
from helpers.browser import call_with_timeout
from helpers.errors import LabError
from helpers.experiment import Experiment
from helpers.frames import FINAL_FRAMES_ONLY
from helpers.plot import PALETTE, _peak, compare_figure, png, run_figure
from helpers.servers import serve
from helpers.timeline import Timeline


@pytest.fixture
def server():
    return serve(seed.app)


def run_broken(server, how="rst", n=4):
    with Experiment(server, watch=seed.get_metrics, title=f"broken, {how}", live=False) as ex:
        group = ex.connect("/ws/metrics", n)
        ex.wait(0.3)
        ex.leave(group, how)
        ex.wait(0.5)
    return ex.run


def test_an_experiment_samples_at_ten_hertz_or_more(server):
    assert run_broken(server).sampling_rate() >= 10


def test_an_experiment_records_its_events_in_order(server):
    run = run_broken(server)
    assert [e.label for e in run.events] == ["4 connected", "4 left: rst"]
    assert run.events[0].t < run.events[1].t


def test_the_run_shows_handlers_ending_after_their_clients_leave(server):
    run = run_broken(server)
    assert run.peak("get_metrics") == 4
    assert run.final("get_metrics") == 0
    assert run.ended_during("get_metrics", "4 left") == 4


def test_leaving_the_experiment_releases_every_client_and_the_sampler(server):
    with Experiment(server, watch=seed.get_metrics, live=False) as ex:
        group = ex.connect("/ws/metrics", 3)
        ex.leave(group, "silent")
    assert clients.open_clients() == 0
    assert not any(t.name == "lab-sampler" for t in threading.enumerate())


def test_an_error_inside_the_experiment_still_releases_the_clients(server):
    with pytest.raises(ZeroDivisionError), Experiment(server, watch=seed.get_metrics, live=False) as ex:
        ex.connect("/ws/metrics", 3)
        raise ZeroDivisionError
    assert clients.open_clients() == 0


def test_a_new_experiment_closes_one_left_open(server):
    first = Experiment(server, watch=seed.get_metrics, live=False).__enter__()
    first.connect("/ws/metrics", 2)
    with Experiment(server, watch=seed.get_metrics, live=False):
        assert clients.open_clients() == 0
    assert first._stop.is_set()


def test_the_live_image_is_redrawn_while_the_experiment_runs(server):
    with Experiment(server, watch=seed.get_metrics, live=True) as ex:
        ex.connect("/ws/metrics", 2)
        for _ in range(40):   # frames come every REDRAW_PERIOD; a loaded machine draws each one more slowly
            ex.wait(0.5)
            if ex.live is not None and ex.live.frames >= 3:
                break
    assert ex.live is not None and ex.live.frames >= 3



def test_with_final_frames_only_the_live_image_gets_just_its_last_frame(server, monkeypatch):
    monkeypatch.setenv(FINAL_FRAMES_ONLY, "1")
    with Experiment(server, watch=seed.get_metrics, live=True) as ex:
        ex.connect("/ws/metrics", 2)
        ex.wait(1.5)   # five redraw periods
    assert ex.live is not None and ex.live.frames == 1

def test_figures_render_with_the_colour_blind_safe_palette_and_labelled_axes(server):
    run = run_broken(server)
    figure = run_figure(run)
    ax = figure.axes[0]
    assert ax.get_xlabel() == "time since start (s)"
    assert str(ax.lines[0].get_color()).lower() == PALETTE[0].lower()
    assert png(figure).startswith(b"\x89PNG")


def test_two_runs_share_one_figure_and_one_scale(server):
    before, after = run_broken(server, "rst"), run_broken(server, "clean")
    figure = compare_figure([before, after])
    assert len(figure.axes) == 2
    assert figure.axes[0].get_ylim() == figure.axes[1].get_ylim()


def test_leave_returns_the_event_it_marked_and_runs_are_queried_by_it(server):
    with Experiment(server, watch=seed.get_metrics, live=False) as ex:
        group = ex.connect("/ws/metrics", 3)
        ex.wait(0.3)
        left = ex.leave(group, "rst")
        ex.wait_until(lambda: ex.probe.alive()["get_metrics"] == 0, timeout=10)
        ex.wait(0.1)
    assert left in ex.run.events and left.label == "3 left: rst"
    assert ex.run.alive_before("get_metrics", left) == 3
    assert ex.run.ended_during("get_metrics", left) == 3
    seconds = ex.run.seconds_until("get_metrics", left, at_most=0)
    assert seconds is not None and seconds >= 0


def test_the_exceptions_logged_can_be_counted_in_one_events_window(server):
    run = run_broken(server)
    left = run.event("4 left")
    assert run.exception_types(left) == run.exception_types() != {}  # the four handlers' errors, logged after it
    assert run.exception_types(run.event("4 connected")) == {}


def test_the_clients_are_released_even_when_the_last_frame_cannot_be_drawn(server, monkeypatch):
    ex = Experiment(server, watch=seed.get_metrics, live=False).__enter__()
    ex.connect("/ws/metrics", 2)

    def broken_draw(final: bool = False) -> None:
        raise RuntimeError("no display")

    monkeypatch.setattr(ex, "_draw", broken_draw)
    with pytest.raises(RuntimeError):
        ex.close()
    assert clients.open_clients() == 0


def test_a_gauge_that_raises_is_reported_instead_of_silently_stopping_the_sampler(server):
    calls = []

    def flaky() -> float:
        calls.append(1)
        if len(calls) > 3:
            raise ValueError("the registry is gone")
        return 0.0

    with (pytest.raises(LabError, match="the registry is gone"),
          Experiment(server, watch=seed.get_metrics, gauges={"flaky": flaky}, live=False) as ex):
        ex.wait(1.0)
    assert clients.open_clients() == 0


@pytest.mark.fast
def test_the_browser_helpers_timeout_returns_without_waiting_for_the_worker():
    release, finished = threading.Event(), threading.Event()

    def work() -> None:
        release.wait(30)
        finished.set()

    with pytest.raises(LabError, match="did not finish"):
        call_with_timeout(work, 0.2)
    assert not finished.is_set()   # it returned while the worker was still waiting
    release.set()


def test_the_plot_peak_is_a_float_as_annotated(server):
    run = run_broken(server)
    assert typing.get_type_hints(_peak)["return"] is float
    assert isinstance(_peak(run) + 0.5, float)


@pytest.mark.fast
def test_notebook_facing_classes_have_docstrings():
    assert Experiment.__doc__ and "leave" in Experiment.__doc__
    assert Timeline.__doc__ and "seconds_until" in Timeline.__doc__


def test_server_busy_holds_the_servers_loop_until_the_block_ends(server):
    ran = threading.Event()
    with Experiment(server, watch=seed.get_metrics, live=False) as ex:
        with ex.server_busy():
            server.loop.call_soon_threadsafe(ran.set)
            assert not ran.wait(0.3)
        assert ran.wait(10)


@pytest.mark.fast
def test_settled_returns_a_reading_once_it_stops_changing():
    from helpers.waiting import settled

    readings = iter([3, 2, 1, 1, 0])
    assert settled(lambda: next(readings), settle=0.02) == 1   # the first reading seen twice in a row


@pytest.mark.fast
def test_wait_while_moving_keeps_waiting_past_the_stall_while_the_progress_changes():
    from helpers.waiting import wait_while_moving

    steps = iter(range(1000))
    position = [0]

    def progress() -> int:
        position[0] = next(steps)
        return position[0]

    assert wait_while_moving(lambda: position[0] >= 10, progress, stall=0.05, interval=0.01) is not None


@pytest.mark.fast
def test_wait_while_moving_gives_up_once_the_progress_stops_changing():
    from helpers.waiting import wait_while_moving

    assert wait_while_moving(lambda: False, lambda: 0, stall=0.05, interval=0.01) is None
