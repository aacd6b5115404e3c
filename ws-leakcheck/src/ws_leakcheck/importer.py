"""The app's own code: importing it from ``"module:attribute"``, and where it raised (standard library only).

The one app loader of the project, modelled on uvicorn's ``importer.py``, with one error type
(``UsageError``): the checker's agent, the lab's ``serve()`` and daphne's subprocess all load an
app with ``load``; each caller decides how to report the error (the checker exits 2, the lab raises
its ``LabError``).
"""

from __future__ import annotations

import importlib
import os
import sys
import sysconfig
import traceback
from typing import Any

from ws_leakcheck.errors import UsageError

PACKAGE_FOLDER = os.path.dirname(os.path.abspath(__file__))
"""This package's folder: its files are the checker's, never the app's."""


def load(spec: str) -> tuple[Any, str]:
    """The app at ``"module:attribute"`` (the attribute may be dotted), and its module's name.

    Every failure is a ``UsageError`` in one sentence that names the fix; an exception the user's module raises
    while it is imported becomes one too, with where it was raised in the app's own code."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        guess = module_name.removesuffix(".py").replace("/", ".").replace(os.sep, ".").strip(".")
        suggestion = f" (for a file {module_name}: {guess}:{attribute or 'app'})" if module_name.endswith(".py") or (
            "/" in module_name) else ""
        raise UsageError(f"App path {spec!r} should look like 'package.module:app'{suggestion}.")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            if module_name.endswith(".py"):
                hint = f"name the module, not its file: {module_name[:-3].replace('/', '.')}:{attribute}"
            else:
                hint = f"run from the folder your app imports from (this is {os.getcwd()})"
            raise UsageError(f"Cannot import module {module_name!r} for app path {spec!r} ({error}): "
                             f"{hint}.") from None
        raise UsageError(f"Importing {module_name!r} failed: {type(error).__name__}: {error}.") from None
    except BaseException as error:  # noqa: BLE001 - any exception of the user's module is reported, not raised
        found = site(error)
        where = f" at {found['where']}" + (f" ({found['line']})" if found["line"] else "") if found else ""
        raise UsageError(f"Importing {module_name!r} raised {type(error).__name__}: {error}{where}.") from None
    app: Any = module
    try:
        for part in attribute.split("."):
            app = getattr(app, part)
    except AttributeError:
        raise UsageError(f"Module {module_name!r} has no attribute {attribute!r} (app path {spec!r}).") from None
    if not callable(app):
        raise UsageError(f"{spec!r} is a {type(app).__name__}, not an ASGI app.")
    return app, module_name


_LIBRARY_ROOTS = tuple(
    os.path.normcase(os.path.realpath(path)) + os.sep
    for path in {sysconfig.get_paths().get(key, "") for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    | {p for p in sys.path if p.rstrip(os.sep).endswith(("site-packages", "dist-packages"))}
    if path
)


def _is_app_file(filename: str) -> bool:
    """A file of the app's own (not the standard library's, not an installed package's, not the checker's)."""
    if filename.startswith(("<", PACKAGE_FOLDER + os.sep)):
        return False
    return not os.path.normcase(os.path.realpath(filename)).startswith(_LIBRARY_ROOTS)


def _shown(filename: str) -> str:
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive (Windows)
        return filename
    return filename if relative.startswith("..") else relative


def site(error: BaseException) -> dict[str, Any] | None:
    """Where ``error`` was raised, in the app's own code: the innermost frame of the app's files (file:line in
    function), its source line, and the exception being handled when it was raised (its ``__context__``)."""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if _is_app_file(frame.filename)]
    if not frames:
        return None
    frame = frames[-1]
    return {"where": f"{_shown(frame.filename)}:{frame.lineno} in {frame.name}", "line": (frame.line or "").strip(),
            "during": _handled(error)}


def _handled(error: BaseException) -> str | None:
    """The exception the app's code was handling when ``error`` was raised: the first in its ``__context__``
    chain that passed through the app's own frames (a library's internal one, translated, is skipped)."""
    context = error.__context__
    for _ in range(10):
        if context is None:
            return None
        if any(_is_app_file(frame.filename) for frame in traceback.extract_tb(context.__traceback__)):
            return type(context).__name__
        context = context.__context__
    return None
