"""Slow is not stuck; a frozen loop is the worst leak; a test suite's own assert."""

import pytest

from ws_leakcheck import check, main
from ws_leakcheck.testing import LeakFound, assert_no_leak


def test_a_handler_that_sleeps_5_s_then_ends_cleanly_is_not_a_leak():
    report = check("tests.support.zoo_shapes:timing", "/sleeps-then-ends", clients=2, ways=("fin",), rounds=False)
    evidence = report.ways["fin"]
    assert report.verdict == "clean", report.summary()
    assert evidence.ended_after_s is not None and 4.0 <= evidence.ended_after_s <= 5.0 + 2.0, evidence
    assert evidence.waited_for_timers_s > 0
    assert "the wait extended" in report.summary()


def test_a_3_s_push_loop_ending_with_an_unhandled_exception_is_noisy():
    report = check("tests.support.zoo_shapes:timing", "/push-3s", clients=2, ways=("rst",), rounds=False)
    assert report.verdict == "noisy", report.summary()
    assert report.ways["rst"].unhandled_exceptions == {"WebSocketDisconnect": 2}
    ended_after_s = report.ways["rst"].ended_after_s
    assert ended_after_s is not None and ended_after_s >= 2.0


def test_a_sleeper_beyond_the_wait_is_a_leak_and_the_summary_says_it_sleeps():
    report = check("tests.support.zoo:app", "/sleeper", clients=2, ways=("fin",), max_wait=2.0)
    assert report.verdict == "leak"
    assert "2 asleep on a timer due after the wait" in report.summary()


def test_a_handler_that_never_yields_is_a_frozen_loop_reported_as_a_leak(capsys):
    """Run as the command runs it, in a process of its own: a frozen thread can only end with its process."""
    code = main(["tests.support.zoo_shapes:timing", "/spin", "--clients", "2", "--json"])
    printed = capsys.readouterr()
    assert code == 1, printed.err
    report = __import__("json").loads(printed.out)["servers"]["uvicorn"]["endpoints"][0]
    assert report["ways"]["clean"]["frozen"] is True
    assert report["ways"]["fin"]["skipped"] == "the server's loop is frozen"


def test_assert_no_leak_passes_a_clean_endpoint_and_returns_its_report():
    report = assert_no_leak("helpers.apps.fixed:app", "/ws/prices", clients=2)
    assert report.verdict == "clean"


def test_assert_no_leak_fails_with_the_evidence_as_its_message():
    with pytest.raises(LeakFound) as failed:
        assert_no_leak("helpers.apps.leaks:app", "/ws/prices", clients=2)
    message = str(failed.value)
    assert message.startswith("leak: /ws/prices")
    assert "2 of 2 handler coroutines never ended" in message
    assert "hint: Tie the handler's life to the connection" in message


def test_assert_no_leak_can_accept_a_noisy_endpoint():
    assert assert_no_leak("helpers.apps.seed:app", "/ws/metrics", clients=2, allow_noisy=True).verdict == "noisy"


def test_the_wait_includes_the_close_timeout_of_uvicorns_deprecated_websockets_backend():
    """That backend closes with a 10 s timeout of its own: a correct endpoint stays clean, a leak stays a leak."""
    fixed = check("helpers.apps.fixed:app", "/ws/chat", clients=2, ws="websockets", ways=("clean", "fin"), rounds=False)
    leak = check("tests.support.zoo:app", "/dict-registry", clients=2, ws="websockets", ways=("clean", "fin"),
                 rounds=False)
    assert fixed.verdict == "clean", fixed.summary()
    assert leak.verdict == "leak", leak.summary()
    assert fixed.versions["uvicorn ws backend"] == "websockets"


def test_a_poller_that_notices_its_client_left_within_two_polls_is_slow_not_stuck():
    report = check("tests.support.zoo_shapes:timing", "/poller-notices", clients=2, ways=("fin", "rst"), rounds=False)
    assert report.verdict == "clean", report.summary()
    ended = [w.ended_after_s for w in report.ways.values()]
    assert all(s is not None and 1.0 <= s <= 3.5 for s in ended), report.summary()
    assert "slow, not stuck" in report.summary()


def test_a_poller_that_never_notices_is_a_leak_said_after_several_of_its_periods():
    report = check("tests.support.zoo_shapes:timing", "/poller-forever", clients=2, ways=("fin",), rounds=False)
    evidence = report.ways["fin"]
    assert report.verdict == "leak", report.summary()
    assert evidence.periodic == 2 and evidence.periods_s and 0.9 <= evidence.periods_s[0] <= 1.1, evidence
    assert evidence.settled_in_s >= 3.0  # three of its one-second periods after the departure
    assert "waking on a timer every 1 s and going back to sleep" in report.summary()
