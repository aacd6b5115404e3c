"""Every route shape real projects use, checked with the app's own route matching (tests/support/zoo_shapes.py)."""

import pytest

from ws_leakcheck import check
from ws_leakcheck.errors import UsageError

SHAPES = [
    # (route shape, app, path, verdict)
    ("WebSocketEndpoint class", "tests.support.zoo_shapes:starlette_app", "/echo", "clean"),
    ("WebSocketEndpoint class, orphan task", "tests.support.zoo_shapes:starlette_app", "/ticker", "leak"),
    ("Starlette Mount(routes=...)", "tests.support.zoo_shapes:starlette_app", "/v1/echo", "clean"),
    ("include_router with prefixes, path parameter", "tests.support.zoo_shapes:app", "/api/chat/lobby", "leak"),
    ("include_router, cleanup in finally", "tests.support.zoo_shapes:app", "/api/chat/safe/lobby", "clean"),
    ("Depends with a query token", "tests.support.zoo_shapes:app", "/items/42/ws?token=abc", "noisy"),
    ("mounted FastAPI sub-app, a queue per visitor", "tests.support.zoo_shapes:app", "/feeds/prices", "leak"),
    ("app wrapped in CORSMiddleware", "tests.support.zoo_shapes:wrapped", "/ws", "clean"),
    ("plain ASGI app", "tests.support.zoo_shapes:plain_echo", "/anything", "clean"),
    ("plain ASGI app that waits forever", "tests.support.zoo_shapes:plain_waiter", "/x", "leak"),
    ("lifespan makes the broker", "tests.support.zoo_shapes:broker_app", "/ws", "clean"),
    ("one-time cache", "tests.support.zoo_shapes:timing", "/cache-once", "clean"),
    ("an id per visitor, never removed", "tests.support.zoo_shapes:timing", "/remember-visitors", "leak"),
]


@pytest.mark.parametrize(("shape", "app", "path", "verdict"), SHAPES, ids=[s[0] for s in SHAPES])
def test_every_route_shape_gets_its_verdict(shape, app, path, verdict):
    report = check(app, path, clients=3)
    assert report.verdict == verdict, report.summary()


def test_a_class_endpoint_is_watched_through_its_dispatch_coroutine():
    report = check("tests.support.zoo_shapes:starlette_app", "/ticker", clients=2, ways=("fin",))
    assert report.endpoint == "Ticker.dispatch" and report.kind == "class"
    assert report.ways["fin"].tasks_alive == 2


def test_a_plain_asgi_app_is_counted_by_its_own_coroutine_and_says_so():
    report = check("tests.support.zoo_shapes:plain_waiter", "/x", clients=2, ways=("rst",))
    assert report.ways["rst"].handlers_alive == 2
    assert any("plain ASGI app" in note for note in report.notes)


def test_a_retained_registry_is_measured_per_departed_session_over_two_rounds():
    report = check("tests.support.zoo_shapes:timing", "/remember-visitors", clients=3)
    assert report.retention.sessions == (3, 6)
    assert report.retention.retained() == {"tests.support.zoo_shapes.visitors": 1.0}


@pytest.mark.fast
def test_a_route_template_is_refused_with_a_concrete_path_asked_for():
    with pytest.raises(UsageError, match="route template"):
        check("tests.support.zoo_shapes:app", "/items/{item_id}/ws")


@pytest.mark.fast
def test_an_http_path_and_a_missing_path_are_usage_errors():
    with pytest.raises(UsageError, match="is an HTTP route"):
        check("helpers.apps.seed:app", "/health")
    with pytest.raises(UsageError, match=r"no WebSocket route at '/nope'.*/api/chat/\{room\}"):
        check("tests.support.zoo_shapes:app", "/nope")
