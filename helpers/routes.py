"""Finding the app and its WebSocket routes, with a readable error when they are not there.

The loading and the route matching are the checker's own (``ws_leakcheck.importer`` and the agent's
``resolve``, both standard library only): the lab and the checker agree on what an app path and a
WebSocket route are. Their ``UsageError`` becomes the lab's ``LabError`` here.
"""

from __future__ import annotations

from types import CodeType

from starlette.types import ASGIApp as ASGIApp  # re-exported: the type the helpers' signatures use

from helpers.errors import LabError
from ws_leakcheck import agent, importer
from ws_leakcheck.errors import UsageError


def load_app(app: ASGIApp | str) -> ASGIApp:
    """Return ``app`` itself, or import it from a ``"module:attribute"`` string."""
    if not isinstance(app, str):
        if not callable(app):
            raise LabError(f"Expected an ASGI app or a 'module:attribute' string, got {type(app).__name__}.")
        return app
    try:
        loaded: ASGIApp = importer.load(app)[0]
    except UsageError as error:
        raise LabError(str(error)) from None
    return loaded


def websocket_paths(app: ASGIApp) -> list[str]:
    """The path templates of the app's WebSocket routes (Mounts and included routers included)."""
    return agent.websocket_paths(app)


def endpoint_codes(app: ASGIApp, path: str) -> tuple[CodeType, ...]:
    """The code objects of the handler serving ``path`` (what the probe and the leak checker watch)."""
    try:
        return agent.resolve(app, path).codes
    except UsageError as error:
        raise LabError(str(error)) from None


def check_websocket_path(app: ASGIApp, path: str) -> None:
    """Raise LabError unless ``path`` is served by one of the app's WebSocket routes.

    Matching is Starlette's own (``route.matches(scope)``), through Mounts, included routers and
    middleware; a plain ASGI app (no routes) serves every path.
    """
    try:
        agent.resolve(app, path)
    except UsageError as error:
        raise LabError(str(error)) from None
