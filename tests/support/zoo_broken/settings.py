"""Settings read at import, two modules below the app: the failing line is here, not in the app's module."""

import os

REDIS_URL = os.environ["LEAKCHECK_ZOO_REDIS_URL"]
