"""Notebook 11's helpers: clients that stop reading while the app sends a lot, measured on real workers."""

from __future__ import annotations

import json

import pytest

from helpers.errors import LabError
from helpers.experiments import stalled
from helpers.experiments.recorded import MEASURED
from helpers.experiments.stalled import Stalled
from helpers.stack import nginx
from tests.support.stack import needs_nginx


def test_a_handler_whose_client_stops_reading_is_reported_blocked_in_send_not_sending():
    row = stalled.measure("hypercorn", "/ws/firehose", n=2, watch=2.0)
    assert (row.handlers, row.sending, row.sends_last_second, row.connections) == (2, 2, 0, 2)
    assert row.outcome == "2 of 2 alive, blocked in send" and row.unsent_kib > 0
    assert row.handlers_after_reading == 2   # it sends again once the clients read


def test_a_timeout_around_each_send_ends_the_handler_and_the_server_keeps_the_connection():
    row = stalled.measure("uvicorn", "/ws/firehose-bounded", n=2, watch=2.5)
    assert row.handlers == 0 and row.endings == {"returned": 2}
    assert row.connections == 2 and row.connections_after_reading == 0


def test_uvicorns_ping_timeout_is_logged_and_leaves_the_blocked_handler_running():
    row = stalled.measure("uvicorn", "/ws/firehose", n=2, watch=3.0, ping=(0.5, 1.5))
    assert row.ping_timeouts == 2 and row.handlers == 2 and row.sending == 2


def test_the_lessons_clients_negotiate_no_compression_and_default_clients_deflate_the_zeros():
    fixed = stalled.measure("hypercorn", "/ws/firehose", n=1, watch=1.5)
    default = stalled.measure("hypercorn", "/ws/firehose", n=1, watch=1.5, rcvbuf=None)
    assert (fixed.compression, fixed.client_rcvbuf) == ("none", 64 * 1024) and fixed.sends_last_second == 0
    assert (default.compression, default.client_rcvbuf) == ("permessage-deflate", None)
    assert default.handlers == 1 and default.sends_last_second > 0   # the buffers never filled


@pytest.mark.fast
def test_the_rows_become_a_table_with_one_line_per_setup():
    row = Stalled("uvicorn", "/ws/firehose", "direct", 3, (0.5, 2.0), None, 0.7, 5.3, None, 4.0, 3, 3, 0, 3, 11383,
                  3, 0)
    text = str(stalled.as_table([row], "caption", client=True))
    assert text.splitlines()[0] == "caption" and len(text.splitlines()) == 4
    assert "none, 64 KiB buffer" in text and "after 0.7 s (5.3 MiB each)" in text
    assert "3 of 3 alive, blocked in send" in text and "3 (11383 KiB)" in text


@pytest.mark.fast
def test_an_unknown_route_is_refused_in_one_sentence():
    with pytest.raises(LabError, match="route must be 'direct' or 'nginx'"):
        stalled.measure("uvicorn", "/ws/firehose", "proxy")  # type: ignore[arg-type]


@pytest.mark.fast
def test_the_nginx_rows_were_recorded_with_the_notebooks_settings_for_every_endpoint_and_server():
    data = json.loads(stalled.RECORDED.read_text())
    assert data["settings"] == {"watch": 4.0, "ping": [0.5, 2.0], "send_timeout": 0.5}
    nginx_rows = [(r["server"], r["path"]) for r in data["results"]["stalled"] if r["route"] == "nginx"]
    assert sorted(nginx_rows) == sorted((s, p) for s in stalled.WORKER_SERVERS for p in stalled.PATHS)


@pytest.mark.fast
def test_without_nginx_the_direct_rows_are_measured_and_the_nginx_rows_are_labelled_recorded(monkeypatch):
    measured: list[tuple[str, ...]] = []

    def every_setup(servers=stalled.WORKER_SERVERS, routes=stalled.ROUTES, **options):
        measured.append(routes)
        return []

    monkeypatch.setattr(nginx, "available", lambda: False)
    monkeypatch.setattr(stalled, "every_setup", every_setup)
    rows, sources = stalled.table()
    assert measured == [("direct",)]
    assert sources["direct"] == MEASURED and sources["nginx"].startswith("RECORDED with the lab on ")
    assert len(rows) == 6 and all(isinstance(r, Stalled) and r.route == "nginx" for r in rows)
    assert all(r.ping is None or isinstance(r.ping, tuple) for r in rows)


@pytest.mark.fast
def test_recorded_rows_are_refused_for_other_settings(monkeypatch):
    monkeypatch.setattr(nginx, "available", lambda: False)
    with pytest.raises(LabError, match="recorded results were made with"):
        stalled.table(send_timeout=5.0)


@needs_nginx
def test_nginx_send_timeout_closes_the_workers_connections_and_logs_a_timeout_per_client():
    row = stalled.measure("uvicorn", "/ws/firehose", "nginx", n=2, watch=2.0)
    assert row.nginx_timeouts == 2 and row.connections == 0 and row.handlers == 0

