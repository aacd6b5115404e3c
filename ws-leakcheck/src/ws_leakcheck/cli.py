"""The command line: ``ws-leakcheck [MODULE:APP] [PATH ...]``, its options and exit statuses.

Settings come from the flags, else from ``[tool.ws-leakcheck]`` in the project's pyproject.toml (see
``ws_leakcheck.config``), else from the defaults. Exit statuses are ``ws_leakcheck.verdict``'s: 0 clean,
1 leak, 3 noisy (0 with ``--allow-noisy``), 5 untested, 2 usage error (an exception while importing the
app included), 4 the checker itself failed. stderr says which.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from dataclasses import fields
from pathlib import Path
from typing import Any

from ws_leakcheck import config as project_config
from ws_leakcheck.clients import CHECKED_WAYS
from ws_leakcheck.config import Script, parse_header
from ws_leakcheck.errors import CheckerFailed, UsageError
from ws_leakcheck.interpreter import project_python
from ws_leakcheck.observe import Options, run
from ws_leakcheck.servers import SERVERS, UVICORN_BACKENDS
from ws_leakcheck.verdict import CHECKER_FAILED, USAGE_ERROR

BACKENDS = ("auto", *UVICORN_BACKENDS)
DEFAULTS = Options()
EPILOG = ("Exit status: 0 clean, 1 leak, 3 noisy (0 with --allow-noisy), 5 untested (the departure was never "
          "exercised), 2 usage error, 4 the checker failed. Several endpoints: leak, then untested, then noisy, "
          "then clean. Settings not given as flags come from [tool.ws-leakcheck] in pyproject.toml.")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"leakcheck: usage error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(USAGE_ERROR)


def _optional_seconds(text: str) -> float | None:
    return None if text.lower() in ("none", "off") else float(text)


def parser() -> argparse.ArgumentParser:
    """Every option defaults to None (not given), so that the project's table can fill it in."""
    p = _Parser(
        prog="ws-leakcheck",
        description="Check WebSocket endpoints for leaks: real clients leave in every way (clean, FIN, RST, silent) "
        "and the checker reports what outlived them.",
        epilog=EPILOG,
    )
    p.add_argument("app", nargs="?", help="the app, as MODULE:ATTRIBUTE (e.g. myproject.main:app), imported from the "
                   "current folder (default: app in [tool.ws-leakcheck])")
    p.add_argument("paths", nargs="*", help="WebSocket paths to check (concrete: /ws/room/1?token=x); default: the "
                   "table's paths, else its routes")
    p.add_argument("--all", action="store_true", help="every WebSocket route without path parameters")
    p.add_argument("--app-dir", metavar="DIR", help="import the app from this folder (a src layout: --app-dir src)")
    p.add_argument("--python", metavar="PATH", help="serve the app with this interpreter, or a virtual environment's "
                   "folder (default: $VIRTUAL_ENV, else ./.venv or ./venv, else the checker's own Python); it needs "
                   "only the app and its server")
    p.add_argument("--server", choices=[*SERVERS, "all"], help="the ASGI server, or all of them (default uvicorn)")
    p.add_argument("--ws", choices=BACKENDS, help="uvicorn's WebSocket backend (default auto: websockets-sansio on "
                   "uvicorn >= 0.50)")
    p.add_argument("--clients", type=int, help=f"clients per way of leaving (default {DEFAULTS.clients})")
    p.add_argument("--ways", help=f"ways of leaving, comma-separated (default {','.join(CHECKED_WAYS)})")
    p.add_argument("--max-wait", type=float, help="longest wait, in seconds, for what the clients left to end "
                   f"(default {DEFAULTS.max_wait:g}; the server's own close timeouts and pings are added)")
    p.add_argument("--settle", type=float, help=f"least wait after the clients leave (default {DEFAULTS.settle:g})")
    p.add_argument("--ping-interval", type=_optional_seconds, default=argparse.SUPPRESS,
                   help=f"seconds, or 'none' (default {DEFAULTS.ping_interval:g})")
    p.add_argument("--ping-timeout", type=_optional_seconds, default=argparse.SUPPRESS,
                   help=f"seconds, or 'none' (default {DEFAULTS.ping_timeout:g})")
    p.add_argument("--no-lifespan", dest="lifespan", action="store_const", const=False,
                   help="do not run the app's lifespan (startup/shutdown)")
    p.add_argument("--shutdown-limit", type=float, help="seconds the server has to exit after the checker asks it to "
                   f"shut down gracefully, once the clients left (default {DEFAULTS.shutdown_limit:g}); longer is a "
                   "leak")
    p.add_argument("--redis", metavar="URL", help="also read Redis's own subscriptions and clients before the clients "
                   "come and after they leave (redis://host:port/db or unix:///path/redis.sock): what grows per "
                   "departed session is a leak")
    p.add_argument("--no-rounds", dest="rounds", action="store_const", const=False,
                   help="skip the two rounds that measure retained state")
    p.add_argument("--send", action="append", metavar="TEXT", help="a text message each client sends after "
                   "connecting (repeatable, in order; replaces the table's send for every path)")
    p.add_argument("--header", action="append", metavar="'Name: value'",
                   help="a handshake header (repeatable; replaces the table's headers for every path)")
    p.add_argument("--subprotocol", action="append", help="a WebSocket subprotocol to offer (repeatable; replaces "
                   "the table's)")
    p.add_argument("--allow-noisy", action="store_const", const=True,
                   help="exit 0, not 3, when the worst finding is noise (unhandled exceptions on disconnect); "
                   "an untested endpoint still exits 5")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    p.add_argument("--junit", metavar="FILE", type=Path,
                   help="also write a JUnit XML report (one test case per endpoint and server); its folder is "
                   "created")
    return p


def _prepare_junit(path: Path) -> None:
    """Make sure the report can be written, before anything runs: its folder is created, as pytest's is."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with open(path, "a"):
            pass
        if not existed:
            path.unlink()
    except OSError as error:
        raise UsageError(f"--junit {str(path)!r} cannot be written ({error.strerror or error}): give a path in a "
                         "folder you can write to.") from None


def _app_and_paths(args: argparse.Namespace, table: project_config.Config) -> tuple[str, list[str]]:
    app, paths = args.app, list(args.paths)
    if app is not None and app.startswith("/"):  # `ws-leakcheck /ws/chat`: the app comes from the table
        app, paths = None, [app, *paths]
    if app is None:
        if table.app is None:
            raise UsageError("Give the app as MODULE:ATTRIBUTE (e.g. myproject.main:app), or set app in "
                             "[tool.ws-leakcheck] in pyproject.toml.")
        app = table.app
    if not paths and not args.all:
        paths = list(table.default_paths())
    return app, paths


def options_from(args: argparse.Namespace, table: project_config.Config, paths: list[str]) -> Options:
    """Flags first, then the table's settings, then Options' defaults."""
    settings: dict[str, Any] = dict(table.settings)
    for name in ("clients", "server", "ws", "max_wait", "settle", "shutdown_limit", "redis", "lifespan", "rounds",
                 "ping_interval", "ping_timeout"):
        if getattr(args, name, None) is not None or (name.startswith("ping") and hasattr(args, name)):
            settings[name] = getattr(args, name)
    if args.ways is not None:
        settings["ways"] = tuple(w.strip() for w in args.ways.split(",") if w.strip())
    for name in ("ping_interval", "ping_timeout"):
        if isinstance(settings.get(name), str):
            settings[name] = _optional_seconds(settings[name])
    python, chosen = project_python(args.python or settings.get("python"),
                                    table.source.parent if table.source and not args.python else None)
    flags = Script(send=tuple(args.send or ()), headers=tuple(parse_header(h) for h in args.header or ()),
                   subprotocols=tuple(args.subprotocol or ()))
    flagged = {name for name, given in (("send", args.send), ("headers", args.header),
                                         ("subprotocols", args.subprotocol)) if given}
    app_dir = args.app_dir or (str(table.app_dir) if table.app_dir else None)
    known = {f.name for f in fields(Options)}
    return Options(
        **{k: v for k, v in settings.items() if k in known and k not in ("python", "server")},
        python=python, python_source=chosen, script=flags, app_dir=app_dir,
        scripts=table.scripts([*paths, *(table.routes if args.all else ())], flags, flagged),
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        table = project_config.load()
        app, paths = _app_and_paths(args, table)
        if args.junit is not None:
            _prepare_junit(args.junit)
        options = options_from(args, table, paths)
        server = args.server or table.settings.get("server") or "uvicorn"
        servers = list(SERVERS) if server == "all" else [server]
        allow_noisy = bool(args.allow_noisy if args.allow_noisy is not None else table.settings.get("allow_noisy"))
        with contextlib.redirect_stdout(sys.stderr):  # what the app prints must not mix with the report
            result = run(app, paths, all_paths=args.all, servers=servers, options=options)
        result.allow_noisy = allow_noisy
    except UsageError as error:
        if args.json:  # a JSON consumer gets JSON, whatever happened
            print(json.dumps({"verdict": None, "error": "usage", "message": str(error)}))
        print(f"leakcheck: usage error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except CheckerFailed as error:
        print(f"leakcheck: the checker itself failed (not a verdict on your app): {error}", file=sys.stderr)
        return CHECKER_FAILED
    except Exception as error:  # noqa: BLE001 - a bug of the checker's must never read as a leak
        print(f"leakcheck: the checker itself failed (not a verdict on your app): {type(error).__name__}: {error}",
              file=sys.stderr)
        traceback.print_exc(limit=-3, file=sys.stderr)
        return CHECKER_FAILED
    print(result.json() if args.json else result.text(), end="\n" if args.json else "", flush=True)  # before the
    # verdict line on stderr, also where both go to one pipe (a CI log)
    if args.junit is not None:
        try:
            args.junit.write_text(result.junit())
        except OSError as error:  # checked writable before the run: it changed meanwhile
            print(f"leakcheck: the checker itself failed: --junit {str(args.junit)!r} could not be written "
                  f"({error.strerror or error})", file=sys.stderr)
            return CHECKER_FAILED
    noisy_note = " (noisy allowed)" if allow_noisy and result.verdict == "noisy" else ""
    print(f"leakcheck: {result.verdict}{noisy_note} (exit {result.exit_code})", file=sys.stderr)
    return result.exit_code


def entry_point() -> None:
    """The ``ws-leakcheck`` console script."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: a frozen server thread (a handler that never yields) cannot be joined.
    os._exit(code)
