import threading

import pytest

from helpers import clients
from helpers.apps import seed
from helpers.experiment import Experiment
from helpers.plot import PALETTE, compare_figure, png, run_figure
from helpers.server import serve


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
    assert run.ended_after("get_metrics", "4 left") == 4


def test_leaving_the_experiment_releases_every_client_and_the_sampler(server):
    with Experiment(server, watch=seed.get_metrics, live=False) as ex:
        group = ex.connect("/ws/metrics", 3)
        ex.leave(group, "silent")
    assert clients.open_clients() == 0
    assert not any(t.name == "lab-sampler" for t in threading.enumerate())


def test_an_error_inside_the_experiment_still_releases_the_clients(server):
    with pytest.raises(ZeroDivisionError):
        with Experiment(server, watch=seed.get_metrics, live=False) as ex:
            ex.connect("/ws/metrics", 3)
            1 / 0
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
        ex.wait(1.0)
    assert ex.live.frames >= 3


def test_figures_render_with_the_colour_blind_safe_palette_and_labelled_axes(server):
    run = run_broken(server)
    figure = run_figure(run)
    ax = figure.axes[0]
    assert ax.get_xlabel() == "time since start (s)"
    assert ax.lines[0].get_color().lower() == PALETTE[0].lower()
    assert png(figure).startswith(b"\x89PNG")


def test_two_runs_share_one_figure_and_one_scale(server):
    before, after = run_broken(server, "rst"), run_broken(server, "clean")
    figure = compare_figure([before, after])
    assert len(figure.axes) == 2
    assert figure.axes[0].get_ylim() == figure.axes[1].get_ylim()
