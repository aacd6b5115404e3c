import json
import subprocess
import sys
import time

import pytest

from helpers.errors import LabError
from helpers.leakcheck import check, main

ZOO = [
    # (app, path, verdict): the lessons' endpoints, their fixes, and variants a learner would write.
    ("helpers.apps.leaks:app", "/ws/prices", "leak"),
    ("helpers.apps.leaks:app", "/ws/heartbeat", "leak"),
    ("helpers.apps.leaks:app", "/ws/alerts", "leak"),
    ("helpers.apps.leaks:app", "/ws/chat", "leak"),
    ("helpers.apps.leaks:app", "/ws/stubborn", "leak"),
    ("tests.zoo:app", "/event-waiter", "leak"),
    ("tests.zoo:app", "/sleeper", "leak"),
    ("tests.zoo:app", "/dict-registry", "leak"),
    ("tests.zoo:app", "/ensure-future-orphan", "leak"),
    ("tests.zoo:app", "/retry-receive", "leak"),
    ("helpers.apps.seed:app", "/ws/metrics", "noisy"),
    ("helpers.apps.leaks:app", "/ws/room/1", "noisy"),
    ("tests.zoo:app", "/receive-no-try", "noisy"),
    ("tests.zoo:app", "/send-no-try", "noisy"),
    ("helpers.apps.seed:app", "/ws/metrics-fixed", "clean"),
    ("helpers.apps.fixed:app", "/ws/prices", "clean"),
    ("helpers.apps.fixed:app", "/ws/heartbeat", "clean"),
    ("helpers.apps.fixed:app", "/ws/alerts", "clean"),
    ("helpers.apps.fixed:app", "/ws/chat", "clean"),
    ("helpers.apps.fixed:app", "/ws/room/1", "clean"),
    ("helpers.apps.fixed:app", "/ws/stubborn", "clean"),
    ("tests.zoo:app", "/echo", "clean"),
    ("tests.zoo:app", "/receive-with-except", "clean"),
    ("tests.zoo:app", "/closes-itself", "clean"),
    ("tests.zoo:app", "/sender-with-watcher", "clean"),
]


@pytest.mark.parametrize(("app", "path", "verdict"), ZOO, ids=[f"{p}-{v}" for _, p, v in ZOO])
def test_the_checker_gives_the_right_verdict_within_ten_seconds(app, path, verdict):
    started = time.monotonic()
    report = check(app, path)
    assert report.verdict == verdict, report.summary()
    assert time.monotonic() - started < 10


def test_a_leak_report_says_what_survived_after_which_way_of_leaving():
    report = check("helpers.apps.leaks:app", "/ws/prices", clients=3)
    assert set(report.ways) == {"clean", "fin", "rst", "silent"}
    assert report.ways["rst"].handlers_alive == 3
    assert "rst    3 of 3 handler coroutines still running" in report.summary()


def test_the_json_output_is_one_object_with_the_verdict_and_evidence_per_way(capsys):
    code = main(["helpers.apps.seed:app", "/ws/metrics", "--json", "--clients", "2"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 3
    assert printed["verdict"] == "noisy"
    assert printed["ways"]["fin"]["unhandled_exceptions"] == {"WebSocketDisconnect": 2}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no_such_module:app", "/ws"], "Cannot import module 'no_such_module'"),
        (["helpers.apps.seed:nothing", "/ws"], "has no attribute 'nothing'"),
        (["helpers.apps.seed:app", "/nope"], "no WebSocket route at '/nope'"),
        (["helpers.apps.seed:app", "/health"], "'/health' is an HTTP route, not a WebSocket route"),
        (["helpers.apps.leaks:app", "/ws/room/{client_id}"], "is a route template"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args, message):
    done = subprocess.run([sys.executable, "-m", "helpers.leakcheck", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_the_command_exits_1_on_a_leak_and_0_when_clean():
    leak = subprocess.run([sys.executable, "-m", "helpers.leakcheck", "helpers.apps.leaks:app", "/ws/chat"],
                          capture_output=True, text=True, timeout=60)
    clean = subprocess.run([sys.executable, "-m", "helpers.leakcheck", "helpers.apps.fixed:app", "/ws/chat", "--json"],
                           capture_output=True, text=True, timeout=60)
    assert leak.returncode == 1 and "LEAK" in leak.stdout
    assert clean.returncode == 0 and json.loads(clean.stdout)["verdict"] == "clean"


def test_an_invalid_option_is_refused():
    with pytest.raises(LabError, match="at least 1"):
        check("helpers.apps.seed:app", "/ws/metrics", clients=0)
