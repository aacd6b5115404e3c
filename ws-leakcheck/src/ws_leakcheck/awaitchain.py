"""Which functions are running in a task: walk its await chain (standard library only).

A coroutine suspended in ``await`` points at what it awaits (``cr_await``; ``gi_yieldfrom``
for generator-based ones; ``ag_await`` for async generators). Following those links from a
task's outermost coroutine down to the innermost one visits every function "on the await
stack", so a handler is found however many layers (FastAPI, Starlette, the server) sit above
it. The walk also steps through the wrapper ``coro.__await__()`` returns (a class endpoint
awaited as an object).

The one walk of the project: the checker's agent, the lab's servers and probe, daphne's
subprocess and the stack's workers all use it. It imports nothing but the standard library, so
it runs in any interpreter that runs the app.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from types import CodeType
from typing import Any, TypeVar

MAX_DEPTH = 200
T = TypeVar("T")


def _inner(awaitable: Any) -> Any:
    """What ``awaitable`` awaits now, or None."""
    inner = (getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
             or getattr(awaitable, "ag_await", None))
    if inner is not None:
        return inner
    if type(awaitable).__name__ == "coroutine_wrapper":  # what ``coro.__await__()`` returns: a class endpoint
        for referent in gc.get_referents(awaitable):
            if inspect.iscoroutine(referent):
                return referent
    return None


def chain_codes(coro: Any) -> list[CodeType]:
    """The code objects of every coroutine on an await chain, outermost first."""
    codes: list[CodeType] = []
    for _ in range(MAX_DEPTH):
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None) or getattr(coro, "ag_code", None)
        if code is not None:
            codes.append(code)
        coro = _inner(coro)
        if coro is None:
            break
    return codes


def count_alive(tasks: Iterable[asyncio.Task[Any]], codes: Mapping[str, CodeType]) -> dict[str, int]:
    """For each watched name, how many times its code object appears on the tasks' await chains.

    Exact only when read on the tasks' own loop between two steps (every chain is then complete).
    """
    counts = dict.fromkeys(codes, 0)
    wanted = {code: name for name, code in codes.items()}
    for task in tasks:
        for code in chain_codes(task.get_coro()):
            name = wanted.get(code)
            if name is not None:
                counts[name] += 1
    return counts


def between_steps(loop: asyncio.AbstractEventLoop, fn: Callable[[], T], timeout: float) -> T:
    """``fn()``, run on ``loop`` between two of its steps (where every await chain is complete), asked from another
    thread. ``concurrent.futures.TimeoutError`` if the loop does not run it within ``timeout`` (a handler blocks it):
    the call is then withdrawn, so it never runs late; ``RuntimeError`` if the loop is closed. The call claims the
    answer before it runs, so an asker that has just given up cannot make it raise on the loop (asyncio would log
    "Exception in callback", as a loaded CI host showed)."""
    answer: concurrent.futures.Future[T] = concurrent.futures.Future()

    def there() -> None:
        if answer.set_running_or_notify_cancel():
            try:
                answer.set_result(fn())
            except BaseException as error:  # noqa: BLE001 - handed to the asker
                answer.set_exception(error)

    loop.call_soon_threadsafe(there)
    try:
        return answer.result(timeout)
    except concurrent.futures.TimeoutError:
        answer.cancel()
        raise


def code_of(fn: Any) -> CodeType:
    """The code object of a Python function (through ``functools.wraps`` wrappers)."""
    fn = getattr(fn, "__wrapped__", fn)
    code: CodeType | None = getattr(fn, "__code__", None)
    if code is None:
        raise TypeError(f"Cannot watch {fn!r}: it is not a Python function.")
    return code


def address_of(fn: Any) -> tuple[str, str]:
    """``(module, qualname)``: how another interpreter finds the same function."""
    fn = getattr(fn, "__wrapped__", fn)
    return fn.__module__, fn.__qualname__


def resolve(module: str, qualname: str) -> CodeType:
    """The code object of ``module.qualname`` in this interpreter (the inverse of ``address_of``)."""
    if "<locals>" in qualname:
        raise LookupError(f"{module}.{qualname} is defined inside a function: it cannot be found by name.")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return code_of(target)
