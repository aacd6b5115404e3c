"""The exercise checks of notebook 06: each rejects the starting code and plausible wrong fixes, and accepts the
solution.

The endpoints come from the notebooks themselves (the ``# EXERCISE n`` cells of 06_exercises and 06_solutions),
so the tests cannot drift from what learners see. Each wrong fix is written here as the edit a learner might make
to the starting cell, and run as that cell would be.
"""

from __future__ import annotations

import itertools
import linecache
import re
from typing import Any

import nbformat
import pytest

import helpers.exercises
from helpers.errors import LabError
from helpers.exercises import EXERCISES, Feedback, check_exercise
from tests.support.notebook_kernel import NOTEBOOKS

NAMES = {1: "scores", 2: "presence", 3: "typing", 4: "sensor", 5: "classroom", 6: "logs"}


def _code_cells(notebook: str) -> list[str]:
    return [c.source for c in nbformat.read(NOTEBOOKS / f"{notebook}.ipynb", as_version=4).cells
            if c.cell_type == "code"]


def exercise_cell(n: int, notebook: str = "06_exercises") -> str:
    return next(c for c in _code_cells(notebook) if c.startswith(f"# EXERCISE {n}\n")) + "\n"


def check_cell(n: int) -> str:
    cells = _code_cells("06_exercises")
    return cells[cells.index(exercise_cell(n)[:-1]) + 1]


_cell_numbers = itertools.count()


def run_cell(source: str, namespace: dict[str, Any]) -> None:
    """Run code as a notebook cell would be run: compiled under a name of its own, its source in linecache."""
    filename = f"<exercise-test-cell-{next(_cell_numbers)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)


def run(n: int, source: str, namespace: dict[str, Any] | None = None) -> Feedback:
    """Run the setup cell (once per namespace), then ``source`` as exercise n's cell, then its check cell."""
    if namespace is None or not namespace:
        namespace = {} if namespace is None else namespace
        run_cell(_code_cells("06_exercises")[0], namespace)
    run_cell(source, namespace)
    feedback = eval(check_cell(n), namespace)
    assert isinstance(feedback, Feedback)
    return feedback


def edited(n: int, old: str, new: str) -> str:
    """Exercise n's starting cell with one edit (which must apply)."""
    original = exercise_cell(n)
    assert old in original, f"exercise {n} no longer contains {old!r}"
    return original.replace(old, new, 1)


def after_accept(n: int, body: str) -> str:
    """Exercise n's starting cell, with everything after the handler's accept replaced by ``body``."""
    original = exercise_cell(n)
    head, accept, _ = original.partition("    await websocket.accept()\n")
    assert accept, n
    return head + accept + body


def emptied(n: int) -> str:
    """Exercise n's starting cell with the handler's body emptied."""
    original = exercise_cell(n)
    head = original[: original.index("    await websocket.accept()\n")]
    return head + "    pass\n"


def assert_rejected(feedback: Feedback, *kinds: str) -> None:
    assert not feedback.passed, feedback.message
    assert feedback.message.startswith(("Not yet", "Almost")) and "Hint: " in feedback.message, feedback.message
    for kind in kinds:
        assert kind in feedback.kinds, (kind, feedback.message)


# The starting code and the solutions.

@pytest.mark.parametrize("n", NAMES, ids=NAMES.get)
def test_the_starting_code_is_rejected(n):
    expected = {1: "handlers", 2: "registry", 3: "tasks", 4: "handlers", 5: "speaker", 6: "pings"}[n]
    assert_rejected(run(n, exercise_cell(n)), expected)


@pytest.mark.parametrize("n", NAMES, ids=NAMES.get)
def test_the_solution_passes(n):
    feedback = run(n, exercise_cell(n, "06_solutions"))
    assert feedback.passed, feedback.message
    assert feedback.message.startswith("Passed: the endpoint did its job (")


@pytest.mark.fast
def test_there_is_one_check_per_exercise_story():
    assert set(EXERCISES) == set(NAMES.values())


# Wrong fixes that every exercise's check must reject.

@pytest.mark.parametrize("n", NAMES, ids=NAMES.get)
def test_accepting_then_returning_is_rejected_as_not_doing_the_job(n):
    feedback = run(n, after_accept(n, "    return\n"))
    assert_rejected(feedback, "closed")
    assert "right after accepting it (close code" in feedback.message


@pytest.mark.parametrize("n", NAMES, ids=NAMES.get)
def test_closing_at_once_is_rejected_as_not_doing_the_job(n):
    feedback = run(n, after_accept(n, "    await websocket.close()\n"))
    assert_rejected(feedback, "closed")


@pytest.mark.parametrize("n", NAMES, ids=NAMES.get)
def test_an_emptied_handler_is_rejected_as_never_accepting(n):
    feedback = run(n, emptied(n))
    assert_rejected(feedback, "refused")
    assert "handshake with HTTP 500: the endpoint returned (or failed) without accepting" in feedback.message


# Wrong fixes that fit each exercise.

WRONG_FIXES = [
    # (exercise, what the learner did, the cell, a kind of finding the check must report)
    (1, "the article's fix: catch WebSocketDisconnect around the loop",
     edited(1, "    finally:\n", "    except WebSocketDisconnect:\n        pass\n    finally:\n"), "handlers"),
    (1, "run_with_receiver without the finally",
     edited(1, """    try:
        while True:
            await websocket.send_json(await feed.get())
    finally:
        score_feeds.discard(feed)
""", """    async def forward() -> None:
        while True:
            await websocket.send_json(await feed.get())
    await run_with_receiver(websocket, forward())
"""), "registry"),
    (2, "catch every exception instead of WebSocketDisconnect",
     edited(2, "except WebSocketDisconnect:", "except Exception:"), "registry"),
    (3, "cancel the pulse in an except around iter_text",
     after_accept(3, """    pulse = asyncio.create_task(typing_pulse(websocket))
    try:
        async for text in websocket.iter_text():
            await websocket.send_json({"echo": text})
    except WebSocketDisconnect:
        pulse.cancel()
"""), "tasks"),
    (3, "drop the pulse",
     after_accept(3, """    async for text in websocket.iter_text():
        await websocket.send_json({"echo": text})
"""), "missing"),
    # Not a leak: the first failed send is caught, the retry's send raises Starlette's WebSocketDisconnected,
    # which nothing catches, and the handler ends with a traceback about 1 s after its client left (ws-leakcheck
    # watches a poller for several of its own wake periods before calling it stuck).
    (4, "the article's fix: catch only WebSocketDisconnect",
     edited(4, "except Exception:", "except WebSocketDisconnect:"), "noisy"),
    (4, "stop sending, keep looping",
     after_accept(4, """    while True:
        await asyncio.sleep(0.05)
"""), "missing"),
    (5, "drop a member whose send fails, one member after the other",
     edited(5, """            for member in list(members):
                await member.send_text(text)
""", """            for member in list(members):
                try:
                    await member.send_text(text)
                except WebSocketDisconnect:
                    members.discard(member)
"""), "stalled"),
    (5, "send to all at once, without a time limit",
     edited(5, """            for member in list(members):
                await member.send_text(text)
""", """            await asyncio.gather(*(m.send_text(text) for m in list(members)), return_exceptions=True)
"""), "stalled"),
    (6, "catch every exception",
     edited(6, "except WebSocketDisconnect:", "except Exception:"), "pings"),
    (6, "receive the filter once, before streaming",
     after_accept(6, """    await websocket.receive_text()
    while True:
        await websocket.send_json(await next_log_line())
"""), "missing"),
]


@pytest.mark.parametrize(("n", "what", "cell", "kind"), WRONG_FIXES, ids=[w for _, w, _, _ in WRONG_FIXES])
def test_a_plausible_wrong_fix_is_rejected_with_what_it_got_wrong(n, what, cell, kind):
    assert_rejected(run(n, cell), kind)


# The feedback.

def test_each_hint_is_chosen_by_what_the_check_found():
    waiting = run(1, exercise_cell(1))
    registry = run(1, WRONG_FIXES[1][2])
    assert "Only a receive tells a handler" in waiting.message and "Unregister in `finally`" not in waiting.message
    assert "Unregister in `finally`" in registry.message and "Only a receive tells a handler" not in registry.message
    assert "score_feeds holds" in registry.message


def test_a_job_not_done_says_what_the_normal_client_expected_and_got():
    feedback = run(2, exercise_cell(2))
    assert 'expected {"online": 1} and got {"online": 2}' in feedback.message



@pytest.fixture(autouse=True)
def no_previous_check() -> None:
    """Each test starts as a fresh kernel does: no previous check to compare with (they share this process)."""
    helpers.exercises._LAST.clear()

def test_a_verdict_repeated_after_an_edit_says_why_the_edit_changed_nothing():
    namespace: dict[str, Any] = {}
    first = run(1, exercise_cell(1), namespace)
    second = run(1, WRONG_FIXES[0][2], namespace)   # adds `except WebSocketDisconnect`
    assert "Same result" not in first.message
    assert re.search(r"Same result as your previous check, word for word: your edit added an `except`, but the "
                     r"handlers are waiting, not failing", second.message), second.message


def test_the_same_code_checked_twice_is_a_reminder_to_run_the_edited_cell():
    namespace: dict[str, Any] = {}
    run(4, exercise_cell(4), namespace)
    again = eval(check_cell(4), namespace)
    assert "run the exercise cell after editing it" in again.message


def test_a_check_without_its_publisher_is_a_clear_error():
    namespace: dict[str, Any] = {}
    run_cell(_code_cells("06_exercises")[0], namespace)
    run_cell(exercise_cell(1), namespace)
    with pytest.raises(LabError, match="publish=publish_goal"):
        check_exercise("scores", namespace["scores_app"], "/ws/scores")


@pytest.mark.fast
def test_an_unknown_exercise_is_a_clear_error():
    with pytest.raises(LabError, match="Unknown exercise 'chat'"):
        check_exercise("chat", None, "/ws")  # type: ignore[arg-type]  # no app: the name is refused first
