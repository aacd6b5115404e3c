"""The one wrapper the in-server observers count an app's WebSocket connections with (ws_leakcheck.connections)."""

import asyncio

import pytest

from ws_leakcheck.connections import Connections

pytestmark = pytest.mark.fast


def _messages(*received):
    queue = list(received)

    async def receive():
        return queue.pop(0) if queue else await asyncio.Event().wait()

    sent = []

    async def send(message):
        sent.append(message)

    return receive, send, sent


def _scope(path="/ws"):
    return {"type": "websocket", "path": path}


def test_a_handler_that_sends_twice_and_returns_is_opened_ended_and_its_sends_counted():
    async def app(scope, receive, send):
        await receive()
        for text in ("a", "b"):
            await send({"type": "websocket.send", "text": text})

    counts = Connections()
    receive, send, sent = _messages({"type": "websocket.connect"})
    asyncio.run(counts.wrap(app)(_scope(), receive, send))
    assert (counts.opened, counts.ended, counts.endings, counts.sends, counts.live) == (1, 1, {"returned": 1}, 2, {})
    assert [m["text"] for m in sent] == ["a", "b"]


def test_a_handler_that_raises_is_counted_by_what_it_raised_and_the_error_goes_on():
    async def app(scope, receive, send):
        raise ConnectionResetError

    counts = Connections()
    with pytest.raises(ConnectionResetError):
        asyncio.run(counts.wrap(app)(_scope(), *_messages()[:2]))
    assert counts.endings == {"ConnectionResetError": 1}


def test_the_close_codes_the_app_receives_are_kept_in_order_1005_where_none_was_given():
    async def app(scope, receive, send):
        for _ in range(3):
            await receive()

    counts = Connections()
    for message in ({"type": "websocket.disconnect", "code": 1001}, {"type": "websocket.disconnect"},
                    {"type": "websocket.disconnect", "code": None}):  # daphne's, for a close frame without a code
        receive, send, _ = _messages({"type": "websocket.connect"}, {"type": "websocket.receive", "text": "x"},
                                     message)
        asyncio.run(counts.wrap(app)(_scope(), receive, send))
    assert counts.close_codes == [1001, 1005, 1005]


def test_after_a_mark_only_connections_opened_since_count_their_sends_per_path():
    async def scenario():
        counts = Connections()
        go = asyncio.Event()

        async def app(scope, receive, send):
            await go.wait()
            await send({"type": "websocket.send", "text": "x"})

        old = asyncio.create_task(counts.wrap(app)(_scope("/feed"), *_messages()[:2]))
        await asyncio.sleep(0)
        counts.mark()
        new = asyncio.create_task(counts.wrap(app)(_scope("/feed"), *_messages()[:2]))
        await asyncio.sleep(0)
        go.set()
        await asyncio.gather(old, new)
        return counts

    counts = asyncio.run(scenario())
    assert counts.sends == 2
    assert counts.read(["/feed", "/feed?room=1", "/other"]) == {"/feed": [1, 0], "/feed?room=1": [1, 0],
                                                                 "/other": [0, 0]}


def test_a_send_that_does_not_return_is_blocked_once_it_has_waited_long_enough():
    async def scenario():
        counts = Connections()

        async def stuck_send(message):
            await asyncio.Event().wait()

        async def app(scope, receive, send):
            await send({"type": "websocket.send", "text": "x"})

        task = asyncio.create_task(counts.wrap(app)(_scope(), _messages()[0], stuck_send))
        await asyncio.sleep(0)
        found = (counts.read(["/ws"], blocked_after=0.0), counts.read(["/ws"], blocked_after=float("inf")),
                 counts.sending)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return found, counts

    (blocked, not_yet, sending), counts = asyncio.run(scenario())
    assert blocked == {"/ws": [1, 1]} and not_yet == {"/ws": [1, 0]} and sending == 1
    assert (counts.sending, counts.pending, counts.endings) == (0, {}, {"CancelledError": 1})


def test_another_scope_goes_to_the_app_uncounted():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200})

    counts = Connections()
    receive, send, sent = _messages()
    asyncio.run(counts.wrap(app)({"type": "http", "path": "/"}, receive, send))
    assert (counts.opened, counts.sending, sent) == (0, 0, [{"type": "http.response.start", "status": 200}])
