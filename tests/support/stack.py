"""What the production stack's tests need of this machine."""

from __future__ import annotations

import os

import pytest

from helpers.stack import nginx

needs_nginx = pytest.mark.skipif(
    not nginx.available() and not os.environ.get("CI"), reason="nginx is not installed (CI installs it)"
)
"""Skip a test that starts nginx where it is not installed, except in CI, which installs it."""
