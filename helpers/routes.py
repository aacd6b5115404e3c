"""Finding the app and its WebSocket routes, with a readable error when they are not there."""

from __future__ import annotations

import importlib
from typing import Any

from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from helpers.errors import LabError

ASGIApp = Any


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


def _routes(app: ASGIApp) -> list[BaseRoute]:
    router = getattr(app, "router", app)
    return list(getattr(router, "routes", []))


def _walk(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, BaseRoute]]:
    found: list[tuple[str, BaseRoute]] = []
    for route in routes:
        if isinstance(route, Mount):
            found += _walk(list(route.routes), prefix + route.path)
        else:
            found.append((prefix, route))
    return found


def websocket_paths(app: ASGIApp) -> list[str]:
    """The path templates of the app's WebSocket routes."""
    return [prefix + route.path for prefix, route in _walk(_routes(app)) if isinstance(route, WebSocketRoute)]


def check_websocket_path(app: ASGIApp, path: str) -> None:
    """Raise LabError unless ``path`` is served by one of the app's WebSocket routes."""
    websocket_route(app, path)


def websocket_route(app: ASGIApp, path: str) -> WebSocketRoute:
    """The WebSocket route serving ``path``, or LabError saying why there is none."""
    if not path.startswith("/"):
        raise LabError(f"WebSocket path {path!r} should start with '/'.")
    bare = path.split("?", 1)[0]
    for prefix, route in _walk(_routes(app)):
        if not bare.startswith(prefix):
            continue
        rest = bare[len(prefix):] or "/"
        if isinstance(route, WebSocketRoute) and route.path_regex.match(rest):
            return route
        if isinstance(route, Route) and route.path_regex.match(rest):
            raise LabError(
                f"{path!r} is an HTTP route, not a WebSocket route; WebSocket routes: {_listing(app)}."
            )
    raise LabError(f"The app has no WebSocket route at {path!r}; WebSocket routes: {_listing(app)}.")


def _listing(app: ASGIApp) -> str:
    paths = websocket_paths(app)
    return ", ".join(paths) if paths else "none"
