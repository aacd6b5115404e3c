"""The scripted client (messages, headers, subprotocols, query strings), lifespan, and handlers that never outlive
a connection."""

import pytest

from helpers.errors import LabError
from helpers.leakcheck import check


def test_an_endpoint_waiting_for_a_first_message_is_reached_with_send():
    without = check("tests.zoo_shapes:app", "/subscribe", clients=2, ways=("fin",))
    scripted = check("tests.zoo_shapes:app", "/subscribe", clients=2, ways=("fin",), send=["subscribe"])
    assert without.ways["fin"].handlers_alive == 0
    assert scripted.verdict == "leak" and scripted.ways["fin"].handlers_alive == 2


def test_headers_and_a_subprotocol_get_past_authentication():
    refused = check("tests.zoo_shapes:app", "/private", clients=2)
    allowed = check("tests.zoo_shapes:app", "/private", clients=2, headers=["Authorization: Bearer lab"],
                    subprotocols=["v1.lab"], send=["hi"])
    assert refused.verdict == "untested" and refused.ways["clean"].refused == "HTTP 403"
    assert allowed.verdict == "clean", allowed.summary()


def test_a_query_string_reaches_a_depends():
    assert check("tests.zoo_shapes:app", "/items/7/ws", clients=2).verdict == "untested"
    assert check("tests.zoo_shapes:app", "/items/7/ws?token=t", clients=2).verdict == "noisy"


def test_a_handler_that_rejects_every_client_is_untested_not_clean():
    report = check("tests.zoo_shapes:timing", "/reject", clients=2)
    assert report.verdict == "untested"
    assert "every handshake was refused (HTTP 403)" in report.summary()


def test_a_handler_that_returns_at_once_is_clean_with_a_note():
    report = check("tests.zoo_shapes:timing", "/accept-then-return", clients=2)
    assert report.verdict == "clean"
    assert "sessions ended before their clients left" in report.summary()
    assert "note: the handler never outlived a connection" in report.headline()


def test_the_lifespan_runs_by_default_startup_before_the_clients_and_shutdown_after():
    from tests.zoo_shapes import broker_app

    assert check(broker_app, "/ws", clients=2, ways=("clean",)).verdict == "clean"
    assert not hasattr(broker_app.state, "broker")  # the shutdown deletes what the startup made


def test_no_lifespan_skips_it():
    skipped = check("tests.zoo_shapes:broker_app", "/ws", clients=2, ways=("clean",), lifespan=False)
    assert skipped.verdict == "noisy"  # app.state.broker was never made: AttributeError in the handler
    assert skipped.ways["clean"].unhandled_exceptions == {"AttributeError": 2}


def test_a_failing_startup_is_a_usage_error_carrying_its_message():
    with pytest.raises(LabError, match=r"startup failed: RuntimeError: cannot reach redis://127\.0\.0\.1:1"):
        check("tests.zoo_shapes:failing_app", "/ws")


def test_a_malformed_header_is_refused():
    with pytest.raises(LabError, match="should look like 'Name: value'"):
        check("tests.zoo_shapes:app", "/private", headers=["no colon"])
