"""Helpers for the WebSocket leak lab.

Import from the submodule that does the job, e.g. ``from helpers.servers import serve``.
This package imports nothing at import time, so that ``python3 -m helpers`` works with a
bare Python before the lab's dependencies are installed.
"""
