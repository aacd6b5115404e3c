"""Finding the app and its WebSocket routes, with a readable error when they are not there."""

from __future__ import annotations

import importlib
from types import CodeType

from starlette.types import ASGIApp as ASGIApp  # re-exported: the type the helpers' signatures use

from helpers.errors import LabError
from helpers.leakcheck import agent


def load_app(app: ASGIApp | str) -> ASGIApp:
    """Return ``app`` itself, or import it from a ``"module:attribute"`` string."""
    if not isinstance(app, str):
        if not callable(app):
            raise LabError(f"Expected an ASGI app or a 'module:attribute' string, got {type(app).__name__}.")
        return app
    module_name, _, attribute = app.partition(":")
    if not module_name or not attribute:
        raise LabError(f"App path {app!r} should look like 'package.module:app'.")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise LabError(f"Cannot import module {module_name!r} for app path {app!r}: {error}.") from None
    try:
        found = getattr(module, attribute)
    except AttributeError:
        raise LabError(f"Module {module_name!r} has no attribute {attribute!r} (app path {app!r}).") from None
    return load_app(found)


def websocket_paths(app: ASGIApp) -> list[str]:
    """The path templates of the app's WebSocket routes (Mounts and included routers included)."""
    return agent.websocket_paths(app)


def endpoint_codes(app: ASGIApp, path: str) -> tuple[CodeType, ...]:
    """The code objects of the handler serving ``path`` (what the probe and the leak checker watch)."""
    try:
        return agent.resolve(app, path).codes
    except agent.UsageError as error:
        raise LabError(str(error)) from None


def check_websocket_path(app: ASGIApp, path: str) -> None:
    """Raise LabError unless ``path`` is served by one of the app's WebSocket routes.

    Matching is Starlette's own (``route.matches(scope)``), through Mounts, included routers and
    middleware; a plain ASGI app (no routes) serves every path.
    """
    try:
        agent.resolve(app, path)
    except agent.UsageError as error:
        raise LabError(str(error)) from None
