"""``--redis URL``: the checker reads Redis's own subscriptions and clients before the clients come and after they
left, on a real redis-server. The apps find that Redis in ``LAB_REDIS_URL`` and are checked in a process of their
own (as the command line does), so that their one Redis client belongs to that check."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.stack.processes import free_port
from helpers.stack.redis import RedisServer
from ws_leakcheck import check
from ws_leakcheck.evidence import REDIS
from ws_leakcheck.redisview import shown

ROOT = Path(__file__).resolve().parents[2]
LESSON = "helpers.apps.production_redis:app"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def lab_redis(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """The Redis URL, given to the app as the lessons' workers get it."""
    monkeypatch.setenv("LAB_REDIS_URL", redis_server.url)
    return redis_server.url


def leakcheck(*args: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ws_leakcheck", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, "LAB_REDIS_URL": redis_url})


def test_a_subscription_per_connection_with_no_receive_running_is_a_leak_redis_counts_per_departed_session(
    lab_redis
):
    report = check(LESSON, "/ws/redis-finally", clients=2, ways=("fin",), redis=lab_redis, python=sys.executable,
                   shutdown_limit=1.0)
    assert report.verdict == "leak", report.summary()
    assert report.ways["fin"].redis_left == {"subscriptions": 2, "clients": 2}
    assert ("Redis kept what these sessions opened: subscriptions +2 (+1 per departed session), "
            "clients +2 (+1 per departed session)") in report.summary()


def test_the_same_feed_with_a_receive_running_and_cleanup_in_finally_leaves_redis_at_its_baseline(lab_redis):
    report = check(LESSON, "/ws/redis-pattern", clients=2, ways=("clean", "fin"), redis=lab_redis,
                   python=sys.executable)
    assert report.verdict == "clean", report.summary()
    assert [w.redis_while_connected for w in report.ways.values()] == [{"subscriptions": 2, "clients": 2}] * 2
    assert [w.redis_left for w in report.ways.values()] == [{}, {}]
    assert not any(name.startswith(REDIS) for name in report.retention.growth), report.retention
    assert "Redis" not in report.summary()


def test_a_subscription_left_by_a_handler_that_ended_is_a_leak_that_only_redis_sees():
    with RedisServer(tcp=False) as unix_redis:  # a Unix socket: the server process's TCP connections show nothing
        done = leakcheck("tests.support.zoo_redis:app", "/subscribed-and-forgotten", "--clients", "2", "--ways", "fin",
                         "--redis", unix_redis.url, "--json", redis_url=unix_redis.url)
    assert done.returncode == 1, done.stderr
    endpoint = json.loads(done.stdout)["servers"]["uvicorn"]["endpoints"][0]
    assert endpoint["ways"]["fin"]["handlers_alive"] == 0 and endpoint["ways"]["fin"]["connections_left"] == {}
    assert endpoint["ways"]["fin"]["redis_left"] == {"subscriptions": 2, "clients": 2}
    assert endpoint["retained_per_session"][REDIS + "subscriptions"] == 1.0
    assert endpoint["retained_per_session"][REDIS + "clients"] == 1.0
    assert "redis" in endpoint["findings"] and "connections" not in endpoint["findings"]
    assert endpoint["options"]["redis"] == shown(unix_redis.url)


def test_a_redis_url_where_nothing_listens_is_a_usage_error_that_names_it():
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = leakcheck("tests.support.zoo:app", "/echo", "--clients", "2", "--redis", url, redis_url=url)
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert done.stderr.startswith(f"leakcheck: usage error: Could not read Redis at {url} (")
    assert "Connection refused" in done.stderr and "give --redis the URL it listens on." in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
