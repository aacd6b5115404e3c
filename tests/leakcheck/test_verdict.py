"""The decision, without a server: ws_leakcheck.verdict fed by hand-made polls and evidence, and by the observations
benchmarks/leakcheck_record.py recorded from real servers (tests/support/leakcheck_recorded.json). The fast tier:
``pytest -m fast`` runs these in seconds."""

import json
import time
from pathlib import Path

import pytest

from ws_leakcheck import cli, verdict
from ws_leakcheck.errors import CheckerFailed
from ws_leakcheck.evidence import Retention, ShutdownEvidence, WayEvidence
from ws_leakcheck.report import Report, Results
from ws_leakcheck.verdict import PERIODS, QUIET, Poll, Settle, decide

pytestmark = pytest.mark.fast

RECORDED = json.loads((Path(__file__).parents[1] / "support" / "leakcheck_recorded.json").read_text())


# Waiting: when to stop watching what the departed clients left.


def _watch(settle: Settle, polls, step=0.1):
    """Feed polls every ``step`` s (``polls(at)`` gives what is alive then) until the decision."""
    at = 0.0
    while at < 60:
        alive, lag = polls(at)
        settled = settle.feed(Poll(round(at, 3), alive, lag))
        if settled is not None:
            return settled
        at += step
    raise AssertionError("Settle never decided")


def _sleeping_until(wake_at, key=1):
    return lambda at: ({key: (max(0.0, wake_at - at), wake_at)} if at < wake_at else {}, 0.0)


def test_what_ends_before_the_least_wait_is_ended_at_the_least_wait():
    settled = _watch(Settle(cap=10, least=0.3), lambda at: ({} if at >= 0.15 else {1: (None, None)}, 0.0))
    assert settled.outcome == "ended" and settled.at >= 0.3 and 0.1 < settled.ended_at < 0.3


def test_a_handler_waiting_on_nothing_with_a_timer_stopped_ending_after_the_quiet_time():
    settled = _watch(Settle(cap=10, least=0.3), lambda at: ({1: (None, None)}, 0.0))
    assert settled.outcome == "stopped" and QUIET <= settled.at < QUIET + 0.3 and settled.ended_at is None


def test_a_timer_due_before_the_cap_is_waited_for_and_its_end_is_slow_not_stuck():
    settled = _watch(Settle(cap=10, least=0.3), _sleeping_until(5.0))
    assert settled.outcome == "ended" and 5.0 <= settled.ended_at <= 5.2
    assert settled.extended >= 4.0


def test_a_timer_due_after_the_cap_is_asleep_and_not_waited_for():
    settled = _watch(Settle(cap=2, least=0.3), _sleeping_until(3600.0))
    assert settled.outcome == "stopped" and settled.at < 1.0 and settled.sleeping == {1}


def _poller(period, ends_at=None):
    """A task that wakes every ``period`` s (its next wake time moves on at each wake), until ``ends_at``."""

    def polls(at):
        if ends_at is not None and at >= ends_at:
            return {}, 0.0
        wake_at = (int(at / period) + 1) * period
        return {7: (wake_at - at, wake_at)}, 0.0

    return polls


def test_a_poller_that_ends_within_its_periods_is_slow_not_stuck():
    settled = _watch(Settle(cap=10, least=0.3), _poller(1.0, ends_at=2.05))
    assert settled.outcome == "ended" and 2.0 <= settled.ended_at <= 2.2


def test_a_poller_that_carries_on_is_watched_for_several_of_its_periods_then_said_to():
    settled = _watch(Settle(cap=10, least=0.3), _poller(1.0))
    assert settled.outcome == "stopped" and settled.at >= 0.3 + PERIODS * 1.0
    assert settled.periodic == {7: pytest.approx(1.0)}


def _caught_between_timer_and_step(polls, at_poll):
    """``polls``, except that the poll at ``at_poll`` finds the task on no timer: its timer had fired, its next
    step had not run yet (one instant of a loaded loop)."""

    def caught(at):
        alive, lag = polls(at)
        if abs(at - at_poll) < 1e-6:
            return dict.fromkeys(alive, (None, None)), lag
        return alive, lag

    return caught


def test_a_poller_caught_once_between_its_timer_and_its_step_is_still_a_poller():
    settled = _watch(Settle(cap=10, least=0.3), _caught_between_timer_and_step(_poller(1.0, ends_at=2.05), 1.0))
    assert settled.outcome == "ended" and 2.0 <= settled.ended_at <= 2.2   # not "stopped" at 1.0 s


def test_a_poller_that_carries_on_is_said_to_even_when_the_last_poll_caught_it_between_steps():
    polls = _poller(1.0)
    first = _watch(Settle(cap=10, least=0.3), polls)
    settled = _watch(Settle(cap=10, least=0.3), _caught_between_timer_and_step(polls, round(first.at, 1)))
    assert settled.outcome == "stopped" and settled.periodic == {7: pytest.approx(1.0)}


def test_a_task_found_on_no_timer_twice_in_a_row_waits_on_something_else():
    def polls(at):
        return {1: (max(0.0, 0.2 - at), 0.2) if at < 0.2 else (None, None)}, 0.0

    settled = _watch(Settle(cap=10, least=0.3), polls)
    assert settled.outcome == "stopped" and settled.sleeping == frozenset() and settled.periodic == {}


def test_a_slow_poller_is_watched_until_the_cap_at_most():
    settled = _watch(Settle(cap=4, least=0.3), _poller(2.0))
    assert settled.outcome == "cap" and 4.0 <= settled.at < 4.2 and 7 in settled.periodic


def test_a_loop_that_stops_answering_is_frozen():
    settled = _watch(Settle(cap=10, least=0.3), lambda at: ({1: (None, None)}, 1.5 if at > 0.2 else 0.0))
    assert settled.outcome == "frozen" and settled.at < 0.5


def test_the_servers_own_close_timeout_is_waited_for():
    settled = _watch(Settle(cap=25, least=0.3, server_wait=12.0), lambda at: ({1: (None, None)}, 0.0))
    assert settled.outcome == "stopped" and settled.at >= 12.0


# Deciding: evidence in, a verdict out.


def _way(name="fin", **observed):
    return WayEvidence(way=name, clients=2, handlers_started=observed.pop("handlers_started", 2), **observed)


CLEAN_ROUNDS = Retention(sessions=(2, 4), rounds=("CLEAN", "FIN+RST"), growth={"app.cache": (1, 0)})
EXITED = ShutdownEvidence(limit_s=3.0, seconds=0.1)


@pytest.mark.parametrize(("ways", "retention", "shutdown", "expected"), [
    ([_way(), _way("rst")], CLEAN_ROUNDS, EXITED, "clean"),
    ([_way(handlers_alive=2)], CLEAN_ROUNDS, EXITED, "leak"),
    ([_way(tasks_alive=1)], CLEAN_ROUNDS, EXITED, "leak"),
    ([_way(websockets_referenced=2)], CLEAN_ROUNDS, EXITED, "leak"),
    ([_way(frozen=True)], Retention(skipped="frozen"), ShutdownEvidence(skipped="frozen"), "leak"),
    ([_way()], Retention(sessions=(2, 4), growth={"app.online": (2, 4)}), EXITED, "leak"),
    ([_way()], CLEAN_ROUNDS, ShutdownEvidence(limit_s=3.0, seconds=None, handlers_alive=2), "leak"),
    ([_way(cancelled_by_server=2, server_cancels_after=10.0, ended_after_s=10.8)], CLEAN_ROUNDS, EXITED, "leak"),
    ([_way(unhandled_exceptions={"WebSocketDisconnect": 2})], CLEAN_ROUNDS, EXITED, "noisy"),
    ([_way(refused="HTTP 403", handlers_started=0)], Retention(skipped="refused"), EXITED, "untested"),
    ([_way(ended_at_once=2, server_close_codes={1008: 2})], CLEAN_ROUNDS, EXITED, "untested"),
    ([_way(skipped="hypercorn cannot notice a silent client")], Retention(skipped="x"), EXITED, "untested"),
    # untested outranks noisy: the exceptions of handlers that ended at once say nothing about departures
    ([_way(ended_at_once=2, unhandled_exceptions={"KeyError": 2})], CLEAN_ROUNDS, EXITED, "untested"),
    # one way that did test the departure is enough; a leak outranks everything
    ([_way(ended_at_once=2), _way("rst")], CLEAN_ROUNDS, EXITED, "clean"),
    ([_way(ended_at_once=2), _way("rst", handlers_alive=1)], CLEAN_ROUNDS, EXITED, "leak"),
    # ended a little after the client left, cancelled by the app's own code: not the server's close timeout
    ([_way(cancelled_by_server=2, server_cancels_after=10.0, ended_after_s=0.4)], CLEAN_ROUNDS, EXITED, "clean"),
    # another endpoint's handlers held the shutdown: not this one's leak
    ([_way()], CLEAN_ROUNDS, ShutdownEvidence(limit_s=3.0, seconds=None, other_handlers={"/ws/x": 2}), "clean"),
])
def test_every_verdict_from_its_evidence(ways, retention, shutdown, expected):
    assert decide(ways, retention, shutdown).verdict == expected


def test_an_untested_endpoint_says_why():
    closed = decide([_way(ended_at_once=2, server_close_codes={1008: 2})], CLEAN_ROUNDS, EXITED)
    refused = decide([_way(refused="HTTP 403", handlers_started=0)], CLEAN_ROUNDS, EXITED)
    assert closed.reasons == (("every session ended before its client left (close code 1008): the departure was "
                               "never tested"),)
    assert refused.reasons == ("every handshake was refused (HTTP 403): no handler ran",)


# Several verdicts, one exit status.


@pytest.mark.parametrize(("verdicts", "allow_noisy", "code"), [
    ([], False, 0),
    (["clean", "clean"], False, 0),
    (["clean", "noisy"], False, 3),
    (["clean", "noisy"], True, 0),
    (["noisy", "untested"], False, 5),
    (["noisy", "untested"], True, 5),  # a tolerated noise never hides an untested endpoint
    (["untested", "leak", "noisy"], True, 1),
    (["untested", "clean"], False, 5),
])
def test_the_exit_status_follows_the_documented_precedence(verdicts, allow_noisy, code):
    assert verdict.exit_code(verdicts, allow_noisy=allow_noisy) == code


def test_the_precedence_and_the_codes_are_the_ones_documented():
    assert verdict.PRECEDENCE == ("leak", "untested", "noisy", "clean")
    assert verdict.EXIT_CODES == {"clean": 0, "leak": 1, "noisy": 3, "untested": 5}
    assert (verdict.USAGE_ERROR, verdict.CHECKER_FAILED) == (2, 4)


# The recorded observations of real endpoints, decided anew.


@pytest.mark.parametrize("case", RECORDED["cases"], ids=[c["name"] for c in RECORDED["cases"]])
def test_the_recorded_observations_of_real_endpoints_get_their_verdict(case):
    report = Report.from_dict(case["report"])
    assert report.verdict == case["expected"] == case["report"]["verdict"], report.summary()
    assert report.explained()  # the evidence renders


def test_the_recordings_cover_every_verdict():
    assert {case["expected"] for case in RECORDED["cases"]} == set(verdict.EXIT_CODES)


def _recorded(name):
    return Report.from_dict(next(c["report"] for c in RECORDED["cases"] if c["name"] == name))


def test_the_recorded_noisy_chat_names_the_line_that_raised_and_a_hint_that_fits():
    explained = _recorded("the except block raises").explained()
    assert "while handling WebSocketDisconnect: await connection.send_text(message)" in explained
    assert "hint: The handler did catch the disconnect: its except block raised WebSocketDisconnect" in explained


def test_the_recorded_daphne_leak_says_daphnes_timeout_ended_it():
    assert "the server cancelled them" in _recorded("ended only by daphne's close timeout").summary()


# Every exit status of the command line, from recorded reports (no server runs).


def _command(monkeypatch, capsys, names, *args):
    reports = [_recorded(name) for name in names]
    monkeypatch.setattr(cli, "run", lambda *a, **k: Results(reports=list(reports), seconds=1.0))
    code = cli.main(["helpers.apps.seed:app", "/ws/metrics", *args])
    return code, capsys.readouterr()


@pytest.mark.parametrize(("names", "args", "code"), [
    (["the pattern"], [], 0),
    (["handlers never end"], [], 1),
    (["a send on a closed connection raises"], [], 3),
    (["a send on a closed connection raises"], ["--allow-noisy"], 0),
    (["a wrong first message"], [], 5),
    (["a send on a closed connection raises", "every handshake refused"], ["--allow-noisy"], 5),
    (["a send on a closed connection raises", "handlers never end", "returns at once"], [], 1),
])
def test_the_command_exits_with_the_status_of_its_verdicts(monkeypatch, capsys, names, args, code):
    assert _command(monkeypatch, capsys, names, *args)[0] == code


def test_a_failure_of_the_checker_exits_4(monkeypatch, capsys):
    def failed(*args, **kwargs):
        raise CheckerFailed("the agent did not answer")

    monkeypatch.setattr(cli, "run", failed)
    assert cli.main(["helpers.apps.seed:app", "/ws/metrics"]) == 4
    assert "the checker itself failed (not a verdict on your app)" in capsys.readouterr().err


def test_an_unwritable_junit_report_exits_2_before_anything_runs(monkeypatch, capsys):
    monkeypatch.setattr(cli, "run", lambda *a, **k: pytest.fail("the check ran"))
    assert cli.main(["helpers.apps.seed:app", "/ws/metrics", "--junit", "/proc/no-such/leak.xml"]) == 2
    assert "cannot be written" in capsys.readouterr().err


def test_the_junit_folder_is_created_and_an_untested_endpoint_is_a_failure_in_it(monkeypatch, capsys, tmp_path):
    junit = tmp_path / "reports" / "leak.xml"
    code, _ = _command(monkeypatch, capsys, ["the pattern", "a wrong first message"], "--junit", str(junit))
    assert code == 5
    xml = junit.read_text()
    assert 'tests="2" failures="1"' in xml and "<failure message=\"untested: /ws/secure-feed" in xml


def test_the_silent_way_waits_for_a_servers_close_timeout_after_its_ping_timeout():
    from ws_leakcheck.observe import SILENT_CLOSE_ALLOWANCE, Options, _cap

    options = Options()
    assert options.ping_interval is not None and options.ping_timeout is not None
    pings = options.ping_interval + options.ping_timeout
    assert _cap(options, "fin", 0.0) == options.max_wait
    assert _cap(options, "silent", 0.0) == options.max_wait + pings + SILENT_CLOSE_ALLOWANCE
    assert pings + 10.0 < _cap(options, "silent", 0.0) - 5.0   # websockets' 10 s close timeout, with room for load


def test_a_loop_that_misses_one_heartbeat_then_beats_again_is_not_frozen():
    # a host that did not run the server's process for a second: one poll finds the beat late, the next on time
    settled = _watch(Settle(cap=10, least=0.3), lambda at: ({}, 1.1 if 0.25 < at < 0.35 else 0.0))
    assert settled.outcome == "ended"


def test_the_sends_are_counted_over_a_span_even_when_the_wait_ended_on_its_first_counted_poll():
    # a loaded host: the poll before the decision came too early to count, the deciding one too late to leave a span
    from ws_leakcheck.observe import SENDS_SPAN, _count_sends_on, _rate

    class Link:
        def request(self, message):
            return {"sends": {"/feed": (0, 0)}}

    sends = [(1.6, 0)]
    _count_sends_on(Link(), "/feed", sends, left_at=time.monotonic() - 1.6)
    assert sends[-1][0] - sends[0][0] >= SENDS_SPAN and _rate(sends) == 0
