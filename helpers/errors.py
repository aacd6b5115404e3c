"""The lab's exceptions: one hierarchy, and every message is one readable sentence that names the fix.

::

    LabError                   every error a helper raises on purpose: catch this one
    ├── PythonUnavailable      an interpreter cannot be used for an environment here (helpers.pythons)
    ├── TimeMachineUnavailable a historical stack could not be installed, typically with no package index
    │                          in reach (helpers.timemachine; notebook 02 then shows the recorded run)
    └── SetupError             ``python3 -m helpers`` cannot go on (helpers.__main__)

Standard library only: ``python3 -m helpers`` imports this module before the lab's dependencies exist.

Two exceptions stay outside on purpose:

- ``helpers.pattern.Dropped`` is part of the file learners copy, which imports only asyncio and Starlette,
  and it is no error: it is how ``broadcast`` ends the handler of a client it dropped.
- ``helpers.exercises.jobs.Refused`` is control flow inside one exercise check, caught there and turned into
  feedback; it never reaches a notebook.

The take-home checker has a hierarchy of its own (``ws_leakcheck.errors``): it imports nothing from the lab.
"""


class LabError(Exception):
    """A helper cannot do what it was asked, explained in one readable sentence that names the fix
    (most often a mistake in how it was called)."""


class PythonUnavailable(LabError):
    """An interpreter cannot be used for an environment here; the message is one sentence naming the fix."""


class TimeMachineUnavailable(LabError):
    """A historical stack could not be installed (typically: the package index is out of reach)."""


class SetupError(LabError):
    """Set-up cannot go on; the message is one sentence naming the fix."""
