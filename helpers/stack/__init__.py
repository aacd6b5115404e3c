"""Real processes started for a lesson: Redis, server workers, nginx; one owner that stops them all.

    from helpers import stack
    lab = stack.start("helpers.apps.production:app", ["uvicorn", "hypercorn"], redis=True)
    lab.url("/ws/prices")      # through nginx
    lab.handlers()             # live handlers per worker, and their sum
    lab.stop()                 # or start another stack: the previous one is stopped first

Each part can also be used alone, as a context manager: ``RedisServer()``, ``Nginx([port])``,
``Worker("module:app", "uvicorn")``.
"""

from helpers.stack.nginx import Nginx
from helpers.stack.owner import Stack, current, start, stop_current
from helpers.stack.redis import RedisServer
from helpers.stack.workers import Worker

__all__ = ["Nginx", "RedisServer", "Stack", "Worker", "current", "start", "stop_current"]
