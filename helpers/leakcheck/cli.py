"""The command line: ``ws-leakcheck MODULE:APP PATH [PATH ...]``, its options and exit statuses.

Exit status: 0 clean, 1 leak, 3 noisy, 5 untested (every handshake refused), 2 usage error
(an exception while importing the app included), 4 the checker itself failed. stderr says which.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import traceback
from pathlib import Path

from helpers.errors import LabError
from helpers.leakcheck.checking import SERVERS, CheckerFailed, Options, parse_header, run
from helpers.leakcheck.clients import WAYS, Script
from helpers.leakcheck.report import CHECKER_FAILED, USAGE_ERROR

BACKENDS = ("auto", "websockets-sansio", "wsproto", "websockets")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"leakcheck: usage error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(USAGE_ERROR)


def _optional_seconds(text: str) -> float | None:
    return None if text.lower() in ("none", "off") else float(text)


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="ws-leakcheck",
        description="Check WebSocket endpoints for leaks: real clients leave in every way (clean, FIN, RST, silent) "
        "and the checker reports what outlived them.",
        epilog="Exit status: 0 clean, 1 leak, 3 noisy, 5 untested, 2 usage error, 4 the checker failed.",
    )
    p.add_argument("app",
                   help="the app, as MODULE:ATTRIBUTE (e.g. myproject.main:app), imported from the current folder")
    p.add_argument("paths", nargs="*", help="WebSocket paths to check (concrete: /ws/room/1?token=x)")
    p.add_argument("--all", action="store_true", help="every WebSocket route without path parameters")
    p.add_argument("--python", metavar="PATH", help="run the server side in this interpreter (your project's venv); "
                   "it needs only the server package")
    p.add_argument("--server", default="uvicorn", choices=[*SERVERS, "all"],
                   help="the ASGI server, or all of them (default uvicorn)")
    p.add_argument("--ws", choices=BACKENDS, default="auto", help="uvicorn's WebSocket backend (default auto: "
                   "websockets-sansio on uvicorn >= 0.50)")
    p.add_argument("--clients", type=int, default=5, help="clients per way of leaving (default 5)")
    p.add_argument("--ways", default=",".join(WAYS),
                   help=f"ways of leaving, comma-separated (default {','.join(WAYS)})")
    p.add_argument("--max-wait", type=float, default=10.0, help="longest wait, in seconds, for what the clients left "
                   "to end (default 10; the server's own close timeouts and pings are added)")
    p.add_argument("--settle", type=float, default=0.3, help="least wait after the clients leave (default 0.3)")
    p.add_argument("--ping-interval", type=_optional_seconds, default=0.5, help="seconds, or 'none' (default 0.5)")
    p.add_argument("--ping-timeout", type=_optional_seconds, default=0.5, help="seconds, or 'none' (default 0.5)")
    p.add_argument("--no-lifespan", action="store_true", help="do not run the app's lifespan (startup/shutdown)")
    p.add_argument("--shutdown-limit", type=float, default=3.0, help="seconds the server has to exit after the "
                   "checker asks it to shut down gracefully, once the clients left (default 3); longer is a leak")
    p.add_argument("--redis", metavar="URL", help="also read Redis's own subscriptions and clients before the clients "
                   "come and after they leave (redis://host:port/db or unix:///path/redis.sock): what grows per "
                   "departed session is a leak")
    p.add_argument("--no-rounds", action="store_true", help="skip the two rounds that measure retained state")
    p.add_argument("--send", action="append", default=[], metavar="TEXT", help="a text message each client sends "
                   "after connecting (repeatable, in order)")
    p.add_argument("--header", action="append", default=[], metavar="'Name: value'",
                   help="a handshake header (repeatable)")
    p.add_argument("--subprotocol", action="append", default=[], help="a WebSocket subprotocol to offer (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    p.add_argument("--junit", metavar="FILE", type=Path,
                   help="also write a JUnit XML report (one test case per endpoint and server)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        options = Options(
            clients=args.clients, ways=tuple(w.strip() for w in args.ways.split(",") if w.strip()), ws=args.ws,
            ping_interval=args.ping_interval, ping_timeout=args.ping_timeout, max_wait=args.max_wait,
            settle=args.settle, lifespan=not args.no_lifespan, rounds=not args.no_rounds,
            shutdown_limit=args.shutdown_limit, redis=args.redis,
            python=args.python or sys.executable,
            script=Script(send=tuple(args.send), headers=tuple(parse_header(h) for h in args.header),
                          subprotocols=tuple(args.subprotocol)),
        )
        servers = list(SERVERS) if args.server == "all" else [args.server]
        with contextlib.redirect_stdout(sys.stderr):  # what the app prints must not mix with the report
            result = run(args.app, args.paths, all_paths=args.all, servers=servers, options=options)
    except LabError as error:
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
    if args.junit:
        args.junit.write_text(result.junit())
    print(result.json() if args.json else result.text(), end="\n" if args.json else "")
    print(f"leakcheck: {result.verdict} (exit {result.exit_code})", file=sys.stderr)
    return result.exit_code


def entry_point() -> None:
    """The ``ws-leakcheck`` console script."""
    raise SystemExit(main())
