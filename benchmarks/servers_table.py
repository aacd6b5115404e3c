"""The server decides: the article's loop, the article's fix and the pattern on every server, measured.

    .venv/bin/python -m benchmarks.servers_table [--after 5] [--silent-window 75]

Prints two tables:

1. server x way of leaving (clean, FIN, RST) -> handlers still alive ``--after`` seconds after
   their clients left, for the article's loop (``seed.get_metrics``), the article's fix
   (``seed.get_metrics_fixed``) and notebook 04's pattern (``fixed.stream``), each server at
   its defaults (daphne's application-close-timeout included);
2. per server at its defaults: how long the article's loop lives after its client goes
   silent (stops reading, never answers pings), observed for ``--silent-window`` seconds. A
   server that sends no pings has no way to notice: there, the lifetime is bounded only by
   the observation window, and the table says so (">= window").
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from helpers import clients
from helpers.apps import fixed, seed
from helpers.servers import SERVERS, LabServer, serve, stop_current

N = 3
WAYS = ("clean", "fin", "rst")
ENDPOINTS: dict[str, tuple[Any, str, Callable[..., Any]]] = {
    "article's loop": (seed.app, "/ws/metrics", seed.get_metrics),
    "article's fix": (seed.app, "/ws/metrics-fixed", seed.get_metrics_fixed),
    "pattern": (fixed.app, "/ws/stubborn", fixed.stream),
}


def alive_after_leaving(
    server: LabServer, watch: dict[str, Callable[..., Any]], way: str, after: float
) -> dict[str, int]:
    """Connect N clients to each watched endpoint, let them all leave one way, count ``after`` seconds later."""
    groups = [clients.connect(server.url(ENDPOINTS[label][1]), N) for label in watch]
    deadline = time.monotonic() + 10
    while server.count_alive(watch) != dict.fromkeys(watch, N) and time.monotonic() < deadline:
        time.sleep(0.05)
    for group in groups:
        clients.leave(group, way)
    time.sleep(after)
    alive = server.count_alive(watch)
    clients.close_all()
    return alive


def leaving_table(after: float) -> dict[tuple[str, str, str], int]:
    """A fresh server per (server, way, app), so that no earlier zombie is counted again."""
    results: dict[tuple[str, str, str], int] = {}
    by_app: dict[int, dict[str, Callable[..., Any]]] = {}
    for label, (app, _, fn) in ENDPOINTS.items():
        by_app.setdefault(id(app), {})[label] = fn
    apps = {id(app): app for app, _, _ in ENDPOINTS.values()}
    for name in SERVERS:
        for way in WAYS:
            for key, watch in by_app.items():
                server = serve(apps[key], server=name)  # type: ignore[arg-type]
                for label, alive in alive_after_leaving(server, watch, way, after).items():
                    results[name, way, label] = alive
                stop_current()
    return results


def silent_lifetime(name: str, window: float) -> tuple[float | None, LabServer]:
    """Seconds from the client going silent to its handler's end, or None if it outlived the window."""
    server = serve(seed.app, server=name)  # type: ignore[arg-type]
    group = clients.connect(server.url("/ws/metrics"), 1)
    while server.count_alive({"fn": seed.get_metrics})["fn"] < 1:
        time.sleep(0.05)
    clients.leave(group, "silent")
    silent = time.monotonic()
    while time.monotonic() - silent < window:
        if server.count_alive({"fn": seed.get_metrics})["fn"] == 0:
            lifetime = time.monotonic() - silent
            clients.close_all()
            stop_current()
            return lifetime, server
        time.sleep(0.2)
    clients.close_all()
    stop_current()
    return None, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--after", type=float, default=5.0, help="seconds after leaving to count (default 5)")
    parser.add_argument("--silent-window", type=float, default=75.0, help="observation window for silent clients")
    parser.add_argument("--skip-silent", action="store_true")
    args = parser.parse_args()

    started = time.monotonic()
    results = leaving_table(args.after)
    print(f"Handlers alive {args.after:g} s after {N} clients left (each server at its defaults):")
    print(f"{'server':<10}{'way':<7}" + "".join(f"{label:>17}" for label in ENDPOINTS))
    for name in SERVERS:
        for way in WAYS:
            print(f"{name:<10}{way:<7}" + "".join(f"{results[name, way, label]:>14}/{N}" for label in ENDPOINTS))
    print(f"(table measured in {time.monotonic() - started:.0f} s)\n")

    if args.skip_silent:
        return
    print("A silent client's handler (the article's loop), each server at its defaults, "
          f"observed for {args.silent_window:g} s:")
    for name in SERVERS:
        lifetime, server = silent_lifetime(name, args.silent_window)
        keepalive = f"ping_interval={server.ping_interval}, ping_timeout={server.ping_timeout}"
        if name == "daphne":
            keepalive += f", application_close_timeout={server.application_close_timeout:g}"  # type: ignore[attr-defined]
        shown = (f"{lifetime:6.1f} s" if lifetime is not None
                 else f">= {args.silent_window:g} s (still alive: bounded only by the window)")
        print(f"{name:<10}{server.version:<8} {keepalive:<62} {shown}")


if __name__ == "__main__":
    main()
