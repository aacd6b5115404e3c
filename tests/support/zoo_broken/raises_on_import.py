"""An app module whose import fails, as a project's does when its settings are missing."""

import os

DATABASE_URL = os.environ["LEAKCHECK_ZOO_DATABASE_URL"]
