"""Redis across workers, read from Redis itself: what a departed client leaves per server and version."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from helpers.experiments.pubsub import Left, measure_departures
from helpers.stack.redis import RedisServer

NONE, ONE_EACH = Left(0, 0, 0), Left(3, 3, 3)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def rows(server: str, redis_server: RedisServer) -> dict[str, dict[str, Left]]:
    return {row.version: row.steps for row in measure_departures(server, redis_server)}  # type: ignore[arg-type]


def test_on_uvicorn_a_departed_subscriber_stays_until_the_next_publish_and_without_finally_its_redis_side_stays(
    redis_server
):
    steps = rows("uvicorn", redis_server)
    assert steps["finally"]["left"] == ONE_EACH and steps["finally"]["after publish 1"] == NONE
    assert steps["bare"]["left"] == ONE_EACH and steps["bare"]["after publish 1"] == Left(3, 3, 0)
    assert steps["pattern"]["left"] == NONE


def test_on_hypercorn_departed_subscribers_outlive_every_publish_and_the_pattern_leaves_nothing(redis_server):
    steps = rows("hypercorn", redis_server)
    assert steps["finally"]["after publish 2"] == ONE_EACH
    assert steps["bare"]["after publish 2"] == ONE_EACH
    assert steps["pattern"]["left"] == NONE
