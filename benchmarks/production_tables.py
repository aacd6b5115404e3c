"""The production lessons' tables, measured on this machine with real processes. Prints; asserts nothing.

    .venv/bin/python -m benchmarks.production_tables              (from the repository's root)
    .venv/bin/python -m benchmarks.production_tables --shutdown   (only the deploy table)
    .venv/bin/python -m benchmarks.production_tables --redis      (only the Redis table)
    .venv/bin/python -m benchmarks.production_tables --proxy      (only the proxy table)
    .venv/bin/python -m benchmarks.production_tables --stalled    (only the heavy-sender table)

1. the stack's start-up time (Redis, a uvicorn and a hypercorn worker, nginx in front);
2. deploys: server x endpoint -> time from SIGINT to exit, with the clients gone (FIN) or still
   connected (and then the close each client saw), with and without uvicorn's
   ``--timeout-graceful-shutdown``, and with a lifespan shutdown that closes a registry;
3. Redis across workers: per departed client, Redis connections and subscriptions seen from
   Redis itself (``CLIENT LIST``, ``PUBSUB NUMSUB``) and live handlers per worker, before and
   after a publish;
4. a proxy in front: each way of leaving, direct and through nginx: how the connection reached
   the worker, the close codes the app saw, the handlers' lifetime;
5. a heavy sender whose clients stop reading (notebook 11's setups): what is left at the reading.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

from helpers import stack
from helpers.experiments import proxy, stalled
from helpers.experiments.deploys import Shutdown, measure_shutdown
from helpers.experiments.pubsub import STEPS, measure_departures
from helpers.stack.workers import WORKER_SERVERS

SERVERS = list(WORKER_SERVERS)
ENDPOINTS = {
    "/ws/prices": "waits on a feed, never receives",
    "/ws/prices-fixed": "the same with a receive always running (the pattern)",
    "/ws/prices-registered": "waits on a feed; lifespan shutdown closes its registry with 1012",
}


def startup_table() -> None:
    print("\n## The stack's start-up\n")
    for _ in range(2):
        lab = stack.start("helpers.apps.production:app", SERVERS, redis=True)
        print(f"Redis + {' + '.join(SERVERS)} workers + nginx: {lab.startup_seconds:.2f} s, "
              f"{len(lab.pids())} processes")
        started = time.monotonic()
        lab.stop()
        print(f"stopped in {time.monotonic() - started:.2f} s")


def shutdown_rows() -> Iterator[Shutdown]:
    for departure in ("fin", "connected"):
        for server in SERVERS:
            for endpoint in ENDPOINTS:
                if departure == "fin" and endpoint == "/ws/prices-registered":
                    continue  # with the clients gone there is no one to tell
                yield measure_shutdown(server, endpoint, departure=departure)  # type: ignore[arg-type]
    yield measure_shutdown("uvicorn", "/ws/prices", graceful_timeout=1)
    yield measure_shutdown("uvicorn", "/ws/prices-registered", departure="connected", graceful_timeout=1)


def shutdown_table() -> None:
    print("\n## Deploys: SIGINT with 3 clients on each endpoint (one process per server, lifespan on)\n")
    print("| server | endpoint | clients | handlers at SIGINT | time to exit | what the clients saw | last log line |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for row in shutdown_rows():
        server = row.server + (f" --timeout-graceful-shutdown {row.graceful_timeout:g}" if row.graceful_timeout else "")
        clients = "left (FIN) 0.5 s before" if row.departure == "fin" else "still connected"
        seen = ", ".join(row.closes) if row.closes else "-"
        print(f"| {server} | `{row.endpoint}` | {clients} | {row.handlers_at_signal} | {row.outcome} | {seen} | "
              f"`{row.last_log_line[:80]}` |", flush=True)


def redis_table(clients: int = 3) -> None:
    print(f"\n## Redis across workers: {clients} clients per version leave by FIN; then the feed publishes twice\n")
    print("Each cell: Redis connections (CLIENT LIST) / subscriptions (PUBSUB NUMSUB) / live handlers "
          "(the worker's reporter).\n")
    print(f"| server | version | {' | '.join(STEPS)} | PUBLISH reached |")
    print("|---|---|" + "---|" * len(STEPS) + "---|", flush=True)
    with stack.RedisServer() as redis_server:
        for server in SERVERS:
            for row in measure_departures(server, redis_server, clients=clients):  # type: ignore[arg-type]
                cells = " | ".join(str(row.steps[step]) for step in STEPS)
                print(f"| {row.server} | {row.version} | {cells} | {', '.join(map(str, row.receivers))} |", flush=True)


def proxy_table() -> None:
    print("\n## A proxy in front: 3 clients of /ws/echo per way and route (proxy_read_timeout 1.5 s)\n")
    print("| server | route | way | reached the worker as | the app's receive got | handlers |")
    print("|---|---|---|---|---|---|", flush=True)
    for server in SERVERS:
        for r in proxy.every_way(server, proxy_read_timeout=1.5):  # type: ignore[arg-type]
            print(f"| {r.server} | {r.route} | {r.way} | {', '.join(r.backend_saw)} | "
                  f"{', '.join(map(str, r.app_codes))} | {r.lifetime} |", flush=True)


def stalled_table() -> None:
    print("\n## A heavy sender, 3 clients that stop reading (uvicorn pings 0.5 s / 2 s, nginx send_timeout 0.5 s, "
          "app send timeout 2 s)\n")
    print("| server | endpoint | route | sends first stopped | at the reading | connections (unsent KiB) | "
          "timeouts logged (ping, nginx) | after reading again (handlers, connections) |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    for r in stalled.every_setup():
        first = "never" if r.stalled_after is None else f"{r.stalled_after:.2f} s ({r.mib_per_client} MiB each)"
        print(f"| {r.server} | `{r.path}` | {r.route} | {first} | {r.outcome} at +{r.watched:.1f} s | "
              f"{r.connections} ({r.unsent_kib}) | {r.ping_timeouts}, {r.nginx_timeouts} | "
              f"{r.handlers_after_reading}, {r.connections_after_reading} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shutdown", action="store_true", help="only the deploy table")
    parser.add_argument("--redis", action="store_true", help="only the Redis table")
    parser.add_argument("--proxy", action="store_true", help="only the proxy table")
    parser.add_argument("--stalled", action="store_true", help="only the heavy-sender table")
    args = parser.parse_args()
    everything = not (args.shutdown or args.redis or args.proxy or args.stalled)
    try:
        if everything:
            startup_table()
        if everything or args.shutdown:
            shutdown_table()
        if everything or args.redis:
            redis_table()
        if everything or args.proxy:
            proxy_table()
        if everything or args.stalled:
            stalled_table()
    finally:
        stack.stop_current()


if __name__ == "__main__":
    main()
