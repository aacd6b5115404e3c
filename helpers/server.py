"""The lab server, as the notebooks and tests have always imported it (kept for compatibility).

Everything lives in ``helpers.servers`` now, where ``serve(app, server=...)`` also runs
hypercorn, granian and daphne. ``serve(app)`` still starts uvicorn.
"""

from __future__ import annotations

from helpers.servers import BACKENDS, HOST, Backend, LabServer, StopReport, current, serve, stop_current

__all__ = ["BACKENDS", "HOST", "Backend", "LabServer", "StopReport", "current", "serve", "stop_current"]
