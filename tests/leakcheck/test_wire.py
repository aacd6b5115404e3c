"""The observers' one message format (ws_leakcheck.wire): JSON lines, an ``op`` asked, an ``id`` carried back."""

import ast
from pathlib import Path

import pytest

from ws_leakcheck import wire
from ws_leakcheck.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
OBSERVERS = ("ws-leakcheck/src/ws_leakcheck/agent.py", "helpers/servers/daphne_agent.py", "helpers/stack/reporter.py")
ASKERS = ("ws-leakcheck/src/ws_leakcheck/observe.py", "helpers/servers/daphne.py")
"""The other ends: the checker's link to its agent in another interpreter, the kernel's to daphne's agent (the
reporter's asker, ``read_report``, is in the reporter's module)."""


@pytest.mark.fast
def test_a_message_is_one_line_and_reads_back_with_what_json_cannot_hold_as_text():
    line = wire.encode({"id": 3, "alive": {"feed": 2}, "path": Path("/ws")})
    assert line.endswith("\n") and line.count("\n") == 1
    assert wire.decode(line) == {"id": 3, "alive": {"feed": 2}, "path": "/ws"}


@pytest.mark.fast
def test_a_line_that_is_not_a_json_object_is_not_a_message():
    with pytest.raises(ValueError, match="a message is a JSON object, not list"):
        wire.decode("[1, 2]\n")


@pytest.mark.fast
def test_an_answer_carries_the_requests_id_back():
    assert wire.answered({"id": 7, "op": "count"}, lambda request: {"alive": 1}) == {"id": 7, "alive": 1}
    assert wire.answered({"op": "count"}, lambda request: {"alive": 1}) == {"alive": 1}


@pytest.mark.fast
def test_a_callers_mistake_is_a_usage_failure_and_an_unknown_op_is_one():
    def refuse(request):
        raise UsageError("'app:nothing' names no attribute 'nothing'.")

    assert wire.answered({"id": 1, "op": "start"}, refuse) == {
        "id": 1, "error": "usage", "message": "'app:nothing' names no attribute 'nothing'."}
    assert wire.answered({"op": "fly"}, wire.unknown) == {"error": "usage", "message": "Unknown request 'fly'."}


@pytest.mark.fast
def test_the_observers_own_failure_is_internal_with_its_traceback():
    answer = wire.answered({"op": "count"}, lambda request: {"alive": 1 // 0})
    assert (answer["error"], answer["message"]) == ("internal", "ZeroDivisionError: integer division or modulo by zero")
    assert "Traceback (most recent call last)" in answer["traceback"]


@pytest.mark.fast
@pytest.mark.parametrize("path", OBSERVERS + ASKERS)
def test_every_observer_and_asker_speaks_through_wire_and_writes_no_json_of_its_own(path):
    tree = ast.parse((ROOT / path).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {f"{node.module}.{alias.name}" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 for alias in node.names}
    assert "ws_leakcheck.wire" in imported
    assert not {name for name in imported if name == "json" or name.startswith("json.")}
