"""Issue 12's lifecycle bugs in the server code: each test failed before its fix."""

import threading

import pytest
from fastapi import FastAPI, WebSocket

from helpers import clients
from helpers.errors import LabError
from helpers.servers import base, current, serve
from tests.support.interrupts import keyboard_interrupt_after, lab_server_threads, slow_app
from tests.support.polling import eventually

release = threading.Event()
app = FastAPI()


@app.websocket("/blocker")
async def blocker(websocket: WebSocket):
    """Blocks the server's loop (a synchronous wait in a handler) until the test releases it."""
    await websocket.accept()
    release.wait(30)


def test_a_server_that_does_not_start_in_time_is_refused_in_one_sentence_and_leaves_no_thread(monkeypatch):
    monkeypatch.setattr(base, "START_TIMEOUT", 0.2)
    with pytest.raises(LabError, match="uvicorn did not start within"):
        serve(slow_app, lifespan=True)
    assert eventually(lambda: not lab_server_threads())
    assert current() is None


def test_a_keyboard_interrupt_during_start_up_leaves_no_server_thread():
    with pytest.raises(KeyboardInterrupt), keyboard_interrupt_after(0.3):
        serve(slow_app, lifespan=True)
    assert eventually(lambda: not lab_server_threads())
    assert current() is None


def test_a_keyboard_interrupt_while_stopping_is_not_swallowed_and_the_server_is_released():
    server = serve("tests.support.endpoints:app", shutdown_timeout=3.0)
    clients.connect(server.url("/stuck"))  # a handler that holds the graceful shutdown
    with pytest.raises(KeyboardInterrupt), keyboard_interrupt_after(0.3):
        server.stop()
    assert not server.running
    assert eventually(lambda: not lab_server_threads())


def test_a_stop_whose_loop_never_answers_reports_unknown_rather_than_zero():
    release.clear()
    server = serve(app, shutdown_timeout=0.2)
    clients.connect(server.url("/blocker"))
    try:
        report = server.stop()
    finally:
        release.set()
    assert report.stuck
    assert report.cancelled_other_tasks is None
    assert "unknown" in str(report)
    # Released, the loop goes on and the abandoned server finishes its exit: bounded, a loaded CPU is slow.
    assert eventually(lambda: not any(t.is_alive() for t in lab_server_threads()), timeout=30)
