"""The one exception type the helpers raise on bad input."""


class LabError(Exception):
    """A mistake in how a helper was called, explained in one readable sentence."""
