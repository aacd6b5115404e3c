"""The checker's two exceptions: a mistake in how it was called, and a failure of its own.

Neither is a verdict on the app: the command line exits 2 for the first and 4 for the second.
"""


class UsageError(Exception):
    """A mistake in how the checker was called (or in the app's import), in one sentence that names the fix."""


class CheckerFailed(Exception):
    """The checker itself failed to measure (not a verdict on the app)."""
