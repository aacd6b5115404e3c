"""What the in-kernel server logged: uvicorn's messages and asyncio's, kept for inspection.

uvicorn writes tracebacks to stderr by default; twenty of them would bury a cell's output.
The lab keeps the records instead, so a notebook can count them and show one on purpose.
"""

from __future__ import annotations

import logging
import traceback
from collections import Counter
from collections.abc import Iterable

LOGGERS = ("uvicorn", "asyncio")  # uvicorn.error and uvicorn.access propagate to "uvicorn"


def exception_types(records: Iterable[logging.LogRecord]) -> Counter[str]:
    """Exception class names attached to error records, e.g. ``{'WebSocketDisconnect': 5}``."""
    return Counter(
        type(r.exc_info[1]).__name__ for r in records if r.levelno >= logging.ERROR and r.exc_info and r.exc_info[1]
    )


def stand_in(type_name: str, text: str) -> BaseException:
    """An exception standing for one known only by its class name and text (another process's, or
    one a server logged as text): ``exception_types`` counts it under the original name."""
    stand_in_type: type[Exception] = type(type_name, (Exception,), {"__module__": "logged as text"})
    return stand_in_type(text)


class TracebackText(logging.Filter):
    """Gives a record whose message ends with a formatted traceback an exception to count.

    For servers that log an app's exception as text (granian's Rust side does) rather than
    with ``exc_info``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info is None and "Traceback (most recent call last)" in message:
            last = message.rstrip().splitlines()[-1]
            name, _, text = last.partition(":")
            if name and " " not in name:
                error = stand_in(name.rsplit(".", 1)[-1], text.strip())
                record.exc_info = (type(error), error, None)
        return True


class ServerLog(logging.Handler):
    """Collects the warnings and errors one lab server logs.

    ``thread_id`` keeps only the records emitted on the server's thread (uvicorn's and
    asyncio's loggers are shared with the rest of the kernel); ``None`` keeps every record of
    ``loggers`` (a server whose own logger only it uses, e.g. granian's Rust threads). A
    server in a subprocess hands its records over with ``add``.
    """

    def __init__(self, thread_id: int | None, loggers: tuple[str, ...] = LOGGERS) -> None:
        # Warnings and errors only: keeping every "connection open" record would make the lab
        # itself grow with each session, the very thing it measures.
        super().__init__(level=logging.WARNING)
        self.thread_id = thread_id
        self.loggers = loggers
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if self.thread_id is None or record.thread == self.thread_id:
            self.records.append(record)

    def add(self, record: logging.LogRecord) -> None:
        """Keep a record that did not pass through this process's loggers (a subprocess's)."""
        if record.levelno >= self.level:
            self.records.append(record)

    def attach(self) -> None:
        for name in self.loggers:
            logger = logging.getLogger(name)
            logger.addHandler(self)
            if logger.getEffectiveLevel() > logging.WARNING:
                logger.setLevel(logging.WARNING)

    def detach(self) -> None:
        for name in self.loggers:
            logging.getLogger(name).removeHandler(self)

    def clear(self) -> None:
        self.records.clear()

    def errors(self) -> list[logging.LogRecord]:
        return [r for r in self.records if r.levelno >= logging.ERROR]

    def exception_types(self) -> Counter[str]:
        """Exception class names attached to the server's error records, e.g. ``{'WebSocketDisconnect': 5}``."""
        return exception_types(self.records)

    def exceptions(self) -> list[BaseException]:
        return [r.exc_info[1] for r in self.errors() if r.exc_info and r.exc_info[1]]

    def messages(self, level: int = logging.ERROR) -> Counter[str]:
        return Counter(r.getMessage() for r in self.records if r.levelno >= level)

    def summary(self) -> str:
        lines = [f"{count:4d} x {level} {message}" for (level, message), count in Counter(
            (r.levelname, r.getMessage()) for r in self.records if r.levelno >= logging.WARNING
        ).most_common()]
        return "\n".join(lines) if lines else "(no warnings or errors logged)"

    def chain(self, index: int = 0) -> list[str]:
        """The exception of the ``index``-th error record and the ones it was raised from, innermost first."""
        errors = self.exceptions()
        if not errors:
            return []
        links: list[str] = []
        error: BaseException | None = errors[index]
        while error is not None and len(links) < 10:
            links.append(f"{type(error).__module__}.{type(error).__qualname__}({_args(error)})")
            error = error.__cause__ or error.__context__
        return links[::-1]

    def traceback(self, index: int = 0) -> str:
        """The formatted traceback of the ``index``-th error record that carries one."""
        with_tb = [r for r in self.errors() if r.exc_info and r.exc_info[1]]
        if not with_tb:
            return "(no traceback logged)"
        record = with_tb[index]
        assert record.exc_info is not None
        error_type, error, tb = record.exc_info
        return f"{record.levelname}: {record.getMessage()}\n" + "".join(
            traceback.format_exception(error_type, error, tb)
        )


def _args(error: BaseException) -> str:
    code = getattr(error, "code", None)
    if code is not None:
        return f"code={code}"
    return ", ".join(repr(a) for a in error.args)
