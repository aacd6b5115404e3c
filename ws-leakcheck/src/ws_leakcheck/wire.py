"""The one message format of the observers that run beside a server: JSON lines.

Three observers speak it: the checker's agent (``ws_leakcheck.agent``, on stdin and stdout), the lab's daphne agent
(``helpers.servers.daphne_agent``, likewise) and the reporter in each worker process of the lab's production stack
(``helpers.stack.reporter``, on a Unix socket, one request per connection).

- A request is one JSON object on one line. Its ``op`` names what is asked; where an asker may have several
  requests waiting, an ``id`` numbers it, and the answer carries that ``id`` back.
- An answer is one JSON object on one line. A request that could not be answered gets
  ``{"error": KIND, "message": ...}``: KIND ``"usage"`` for a mistake of the caller's (a wrong app path, an unknown
  ``op``), ``"internal"`` for the observer's own failure.
- An observer may also send lines nobody asked for, each an object whose first key says what it is
  (``{"ready": ...}``, ``{"log": ...}``).

Standard library only: it runs in the server's interpreter.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from ws_leakcheck.errors import UsageError

USAGE = "usage"
INTERNAL = "internal"


def encode(message: Mapping[str, Any]) -> str:
    """One message as one line (values JSON cannot hold are written as their ``str``)."""
    return json.dumps(message, default=str) + "\n"


def decode(line: str | bytes) -> dict[str, Any]:
    """One line as one message; a ValueError if it is not a JSON object."""
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError(f"a message is a JSON object, not {type(message).__name__}: {line!r:.80}")
    return message


def failure(kind: str, message: str) -> dict[str, Any]:
    return {"error": kind, "message": message}


def unknown(request: Mapping[str, Any]) -> dict[str, Any]:
    """The answer to an ``op`` the observer does not know."""
    return failure(USAGE, f"Unknown request {request.get('op')!r}.")


def answered(request: Mapping[str, Any], handle: Callable[[Mapping[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """``handle(request)``, as an answer: a UsageError becomes a ``usage`` failure, any other exception an
    ``internal`` one (with its traceback), and the request's ``id``, if any, is carried back."""
    try:
        answer = handle(request)
    except UsageError as error:
        answer = failure(USAGE, str(error))
    except Exception as error:  # noqa: BLE001 - reported to the asker, which decides what it means
        described = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        answer = {**failure(INTERNAL, described), "traceback": traceback.format_exc()}
    return answer if "id" not in request else {"id": request["id"], **answer}
