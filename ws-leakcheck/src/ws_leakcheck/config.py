"""``[tool.ws-leakcheck]`` in the project's ``pyproject.toml``: the app, its paths, and each route's client script.

    [tool.ws-leakcheck]
    app = "chat.main:app"            # the default app of the command line and the pytest fixture
    app-dir = "src"                  # where the app imports from (default: the folder of pyproject.toml)
    paths = ["/ws/chat", "/ws/feed"] # what a bare `ws-leakcheck` checks (default: every route listed below)
    clients = 3                      # any option of the command line, by its long name
    allow-noisy = true

    [tool.ws-leakcheck.routes."/ws/feed"]
    query = "token=${WS_TEST_TOKEN}" # appended to the path; ${NAME} is read from the environment
    headers = ["Authorization: Bearer ${WS_TEST_TOKEN}"]
    subprotocols = ["v1"]
    send = ['{"type": "hello"}']     # text messages each client sends after connecting, in order

Flags override the table: ``--send``, ``--header`` and ``--subprotocol`` replace what every route's script
says, a query string in a path replaces the route's ``query``, and any other flag replaces its setting. The
file is found in the current folder or the nearest folder above it that has a ``pyproject.toml``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ws_leakcheck.errors import UsageError

TABLE = "ws-leakcheck"
SETTINGS: dict[str, type | tuple[type, ...]] = {
    "clients": int, "ways": list, "server": str, "ws": str, "max-wait": (int, float), "settle": (int, float),
    "ping-interval": (int, float, str), "ping-timeout": (int, float, str), "lifespan": bool,
    "shutdown-limit": (int, float), "redis": str, "rounds": bool, "allow-noisy": bool, "python": str,
}
"""The settings the table may hold besides app, app-dir, paths and routes, with their TOML types."""
ROUTE_KEYS = ("send", "headers", "subprotocols", "query")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Script:
    """What each client does between connecting and leaving: handshake headers, subprotocols, a query string,
    then text messages sent in order."""

    send: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    subprotocols: tuple[str, ...] = ()
    query: str = ""

    def url_path(self, path: str) -> str:
        """``path`` with this script's query string, unless the path carries its own."""
        if not self.query or "?" in path:
            return path
        return f"{path}?{self.query}"


@dataclass(frozen=True)
class Config:
    """The ``[tool.ws-leakcheck]`` table, read and checked (empty when the project has none)."""

    source: Path | None = None
    app: str | None = None
    app_dir: Path | None = None
    paths: tuple[str, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Command-line options by their Python names (``max_wait``), as the table gave them."""
    routes: Mapping[str, Script] = field(default_factory=dict)
    """Path -> its script as written (``${NAME}`` unexpanded): use ``script(path)``."""

    def default_paths(self) -> tuple[str, ...]:
        return self.paths or tuple(self.routes)

    def script(self, path: str) -> Script:
        """The route's script for ``path``, its ``${NAME}`` read from the environment now (an empty script for a
        route the table does not list)."""
        bare = path.partition("?")[0]
        raw = self.routes.get(bare)
        if raw is None:
            return Script()
        here = f'[tool.{TABLE}] routes."{bare}" in {self.source}'
        return Script(send=tuple(expand(text, here) for text in raw.send),
                      headers=tuple((name, expand(value, here)) for name, value in raw.headers),
                      subprotocols=raw.subprotocols, query=expand(raw.query, here))

    def scripts(self, paths: Sequence[str], flags: Script, flagged: set[str]) -> dict[str, Script]:
        """Each path's script: its route's, with the fields given as flags (``flagged``) replaced by theirs."""
        return {path.partition("?")[0]: replace(self.script(path), **{name: getattr(flags, name) for name in flagged})
                for path in paths}


def parse_header(header: tuple[str, str] | str) -> tuple[str, str]:
    if isinstance(header, tuple):
        return header
    name, sep, value = header.partition(":")
    if not sep or not name.strip():
        raise UsageError(f"Header {header!r} should look like 'Name: value'.")
    return name.strip(), value.strip()


def find(start: Path | None = None) -> Path | None:
    """The nearest ``pyproject.toml``, from ``start`` (the current folder) upwards."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / "pyproject.toml").is_file():
            return candidate / "pyproject.toml"
    return None


def load(start: Path | None = None) -> Config:
    """The project's table, or an empty Config when there is no pyproject.toml or no table in it."""
    path = find(start)
    if path is None:
        return Config()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"{path} is not valid TOML ({error}); fix it, or run from another folder.") from None
    table = document.get("tool", {}).get(TABLE)
    if table is None:
        return Config()
    return parse(table, path)


def parse(table: Any, source: Path) -> Config:
    where = f"[tool.{TABLE}] in {source}"
    if not isinstance(table, dict):
        raise UsageError(f"{where} should be a table.")
    unknown = set(table) - {"app", "app-dir", "paths", "routes", *SETTINGS}
    if unknown:
        known = ", ".join(["app", "app-dir", "paths", "routes", *SETTINGS])
        raise UsageError(f"{where} has unknown key(s) {', '.join(sorted(unknown))}; known keys: {known}.")
    app = _typed(table, "app", str, where)
    app_dir = _typed(table, "app-dir", str, where)
    paths = _strings(table.get("paths", []), f"{where}: paths")
    for path in paths:
        if not path.startswith("/"):
            raise UsageError(f"{where}: paths should start with '/', not {path!r}.")
    settings = {}
    for key, kind in SETTINGS.items():
        if key in table:
            value = table[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise UsageError(f"{where}: {key} = {value!r} has the wrong type.")
            settings[key.replace("-", "_")] = value
    if "ways" in settings:
        settings["ways"] = tuple(_strings(settings["ways"], f"{where}: ways"))
    routes_table = table.get("routes", {})
    if not isinstance(routes_table, dict):
        raise UsageError(f"{where}: routes should be a table of tables, one per path.")
    routes = {path: _route(path, value, where) for path, value in routes_table.items()}
    return Config(source=source, app=app, app_dir=source.parent / app_dir if app_dir else source.parent,
                  paths=tuple(paths), settings=settings, routes=routes)


def _typed(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = table.get(key)
    if value is not None and not isinstance(value, kind):
        raise UsageError(f"{where}: {key} should be a {kind.__name__}, not {value!r}.")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise UsageError(f"{where} should be a list of strings, not {value!r}.")
    return value


def expand(text: str, where: str) -> str:
    """``${NAME}`` replaced by the environment variable (a token kept in CI's secrets, not in the file)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise UsageError(f"{where} uses ${{{name}}}, which is not set in the environment: set it (e.g. from your "
                             "CI's secrets) or write the value.")
        return os.environ[name]

    return _VARIABLE.sub(value, text)


def _route(path: str, value: Any, where: str) -> Script:
    here = f'{where}: routes."{path}"'
    if not path.startswith("/") or "?" in path:
        raise UsageError(f"{here}: the key should be a path starting with '/', without a query string (use query).")
    if not isinstance(value, dict):
        raise UsageError(f"{here} should be a table (send, headers, subprotocols, query).")
    unknown = set(value) - set(ROUTE_KEYS)
    if unknown:
        raise UsageError(f"{here} has unknown key(s) {', '.join(sorted(unknown))}; known keys: "
                         f"{', '.join(ROUTE_KEYS)}.")
    query = value.get("query", "")
    if isinstance(query, dict):
        query = "&".join(f"{k}={v}" for k, v in query.items())
    if not isinstance(query, str):
        raise UsageError(f"{here}: query should be a string ('token=x&room=1') or a table.")
    try:
        headers = tuple(parse_header(h) for h in _strings(value.get("headers", []), f"{here}: headers"))
    except UsageError as error:
        raise UsageError(f"{here}: {error}") from None
    return Script(  # ${NAME} stays as written until the route is checked (Config.script)
        send=tuple(_strings(value.get("send", []), f"{here}: send")),
        headers=headers,
        subprotocols=tuple(_strings(value.get("subprotocols", []), f"{here}: subprotocols")),
        query=query.lstrip("?"),
    )
