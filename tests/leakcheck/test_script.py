"""The scripted client (messages, headers, subprotocols, query strings), lifespan, and handlers that never outlive
a connection."""

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from ws_leakcheck import check
from ws_leakcheck.errors import UsageError


def test_an_endpoint_waiting_for_a_first_message_is_reached_with_send():
    without = check("tests.support.zoo_shapes:app", "/subscribe", clients=2, ways=("fin",))
    scripted = check("tests.support.zoo_shapes:app", "/subscribe", clients=2, ways=("fin",), send=["subscribe"])
    assert without.ways["fin"].handlers_alive == 0
    assert scripted.verdict == "leak" and scripted.ways["fin"].handlers_alive == 2


def test_headers_and_a_subprotocol_get_past_authentication():
    refused = check("tests.support.zoo_shapes:app", "/private", clients=2)
    allowed = check("tests.support.zoo_shapes:app", "/private", clients=2, headers=["Authorization: Bearer lab"],
                    subprotocols=["v1.lab"], send=["hi"])
    assert refused.verdict == "untested" and refused.ways["clean"].refused == "HTTP 403"
    assert allowed.verdict == "clean", allowed.summary()


def test_a_query_string_reaches_a_depends():
    assert check("tests.support.zoo_shapes:app", "/items/7/ws", clients=2).verdict == "untested"
    assert check("tests.support.zoo_shapes:app", "/items/7/ws?token=t", clients=2).verdict == "noisy"


def test_a_handler_that_rejects_every_client_is_untested_not_clean():
    report = check("tests.support.zoo_shapes:timing", "/reject", clients=2)
    assert report.verdict == "untested"
    assert "every handshake was refused (HTTP 403)" in report.summary()


def test_a_handler_that_returns_at_once_is_untested_never_clean():
    """Nothing could outlive a client whose handler ended before it left: the departure was not tested."""
    report = check("tests.support.zoo_shapes:timing", "/accept-then-return", clients=2)
    assert report.verdict == "untested" and report.exit_code == 5
    assert "all 2 sessions ended before their clients left" in report.summary()
    assert re.search(r"every session ended before its client left( \(close code \d+\))?: the departure was never "
                     "tested", report.headline())


def test_a_wrong_first_message_that_makes_the_handler_close_is_untested_with_its_close_code():
    # tests/support/zoo_project has a `helpers` package of its own: its app is served in a process of its own
    app_dir = str(Path(__file__).parents[1] / "support" / "zoo_project")
    project: dict[str, Any] = dict(python=sys.executable, app_dir=app_dir)
    report = check("chat.main:app", "/ws/secure-feed?token=secret-token", clients=2, send=['{"typ": "hello"}'],
                   ways=("fin", "rst"), **project)
    right = check("chat.main:app", "/ws/secure-feed?token=secret-token", clients=2, send=['{"type": "hello"}'],
                  ways=("fin",), rounds=False, **project)
    assert report.verdict == "untested", report.summary()
    assert report.ways["fin"].server_close_codes == {1008: 2}
    assert "(close code 1008)" in report.headline()
    assert right.verdict == "leak", right.summary()


def test_the_lifespan_runs_by_default_startup_before_the_clients_and_shutdown_after():
    from tests.support.zoo_shapes import broker_app

    assert check(broker_app, "/ws", clients=2, ways=("clean",)).verdict == "clean"
    assert not hasattr(broker_app.state, "broker")  # the shutdown deletes what the startup made


def test_no_lifespan_skips_it():
    skipped = check("tests.support.zoo_shapes:broker_app", "/ws", clients=2, ways=("clean",), lifespan=False)
    # app.state.broker was never made: the handler raises AttributeError as soon as it runs, before its client
    # leaves, so the departure was not tested (and the exception is in the evidence)
    assert skipped.verdict == "untested", skipped.summary()
    assert skipped.ways["clean"].unhandled_exceptions == {"AttributeError": 2}


def test_a_failing_startup_is_a_usage_error_carrying_its_message():
    with pytest.raises(UsageError, match=r"startup failed: RuntimeError: cannot reach redis://127\.0\.0\.1:1"):
        check("tests.support.zoo_shapes:failing_app", "/ws")


@pytest.mark.fast
def test_a_malformed_header_is_refused():
    with pytest.raises(UsageError, match="should look like 'Name: value'"):
        check("tests.support.zoo_shapes:app", "/private", headers=["no colon"])
