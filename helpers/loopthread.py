"""An asyncio event loop running on a daemon thread of its own.

The server and the clients each get one, so that a cell running blocking code in the
kernel (``time.sleep``, a long computation) never stalls them, and so that the notebook's
main thread stays free to draw plots and to receive a KeyboardInterrupt cleanly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

NEW_LOOP_HOOKS: list[Callable[[asyncio.AbstractEventLoop], None]] = []
"""Called with every new loop before it runs (the test suite watches the lab's tasks through it)."""


class LoopThread:
    """An asyncio event loop on a daemon thread named ``name``, running until it is stopped."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        for hook in NEW_LOOP_HOOKS:
            hook(self.loop)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    @property
    def ident(self) -> int | None:
        return self._thread.ident

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on this loop and wait for its result from the calling thread.

        On timeout or KeyboardInterrupt the coroutine is cancelled before the error propagates.
        """
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def tasks(self) -> set[asyncio.Task[Any]]:
        """The loop's unfinished tasks, read from any thread."""
        if self.loop.is_closed():
            return set()
        return asyncio.all_tasks(self.loop)

    @property
    def native_id(self) -> int | None:
        return self._thread.native_id

    def stop(self, timeout: float = 2.0) -> int | None:
        """Cancel every task left on the loop, stop it, join the thread; return how many were cancelled.

        None means unknown: the loop did not answer within ``timeout`` (a handler blocks it), so the
        tasks could be neither counted nor cancelled. The thread is a daemon and is abandoned then.
        """
        if not self._thread.is_alive():
            return 0

        async def cancel_all() -> int:
            current = asyncio.current_task()
            left = [t for t in asyncio.all_tasks() if t is not current]
            for task in left:
                task.cancel()
            if left:
                await asyncio.wait(left, timeout=timeout)
            return len(left)

        # The coroutine is created on the loop itself: a stuck loop never runs it, and no
        # never-awaited coroutine is left behind to warn about.
        answer: concurrent.futures.Future[int] = concurrent.futures.Future()

        def start() -> None:
            if not answer.set_running_or_notify_cancel():
                return
            task = self.loop.create_task(cancel_all())
            task.add_done_callback(report)

        def report(task: asyncio.Task[int]) -> None:
            if task.cancelled():
                answer.set_exception(concurrent.futures.CancelledError())
            elif task.exception() is not None:
                answer.set_exception(task.exception())
            else:
                answer.set_result(task.result())

        self.loop.call_soon_threadsafe(start)
        cancelled: int | None
        try:
            cancelled = answer.result(timeout + 1.0)
        except concurrent.futures.TimeoutError:
            answer.cancel()
            cancelled = None
        except concurrent.futures.CancelledError:
            cancelled = None  # the loop was stopped under the lab's feet: nothing could be counted
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        return cancelled
