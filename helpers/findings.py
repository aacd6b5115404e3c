"""The one-page summary: per server, way of leaving and endpoint shape → what happens, with the fix.

Each lesson records the rows it measured (``record_findings``), into the lab's cache. The summary
(``summary_markdown``, shown at the end of notebook 05 by ``show_summary``) gathers them. A lesson
not run on this machine yet is shown from the rows recorded with the lab (``findings_recorded.json``,
written by ``python -m helpers.findings freeze`` from a run of every lesson), labelled as recorded,
so the page is whole in any order. ``python -m helpers.findings`` prints the page as Markdown, to
print for a workshop.
"""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from helpers.errors import LabError
from helpers.timemachine import cache_dir
from helpers.versions import installed

RECORDED = Path(__file__).with_name("findings_recorded.json")
"""The rows recorded with the lab, per lesson: the summary's fallback for a lesson not run here yet."""
LESSONS = ("01", "04", "05", "10", "11")
"""The lessons whose rows make the summary, in order (03's rows are 04's "before": 04 stands for both)."""


def lessons_up_to(lesson: str) -> tuple[str, ...]:
    """The summary's lessons up to ``lesson``, included: what a learner has done by then. A lesson's page leaves
    out the later ones, whose rows would answer their predictions before they are asked."""
    return tuple(name for name in LESSONS if name <= lesson)


@dataclass(frozen=True)
class Finding:
    """One row of the summary, as a lesson measured it: which server, how the client left, which endpoint shape,
    what happened (with the measured figure), and the fix (with the lesson that measured it)."""

    server: str
    leaving: str
    shape: str
    happens: str
    fix: str


def _folder() -> Path:
    return cache_dir() / "findings"


def _versions() -> dict[str, str]:
    return {name: installed(name) or "missing"
            for name in ("starlette", "uvicorn", "hypercorn", "granian", "daphne", "websockets")}


def record_findings(lesson: str, findings: Iterable[Finding]) -> Path:
    """Record what lesson ``lesson`` (e.g. "03") measured, replacing what it recorded before; return the file."""
    rows = list(findings)
    if not rows:
        raise LabError(f"Lesson {lesson} recorded no finding; give it at least one Finding.")
    folder = _folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{lesson}.json"
    record = {"lesson": lesson, "date": datetime.date.today().isoformat(), "versions": _versions(),
              "findings": [asdict(row) for row in rows]}
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def _load(path: Path) -> dict[str, object] | None:
    try:
        loaded: dict[str, object] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return loaded


def lesson_record(lesson: str) -> tuple[dict[str, object] | None, str]:
    """(the lesson's record, where it comes from): measured on this machine, else recorded with the lab."""
    measured = _load(_folder() / f"{lesson}.json")
    if measured is not None:
        return measured, f"measured here on {measured['date']}"
    recorded = _load(RECORDED) or {}
    found = recorded.get(lesson)
    if isinstance(found, dict):
        return found, f"RECORDED with the lab on {found['date']}, not measured here (run notebook {lesson})"
    return None, f"not measured yet: run notebook {lesson}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summary_markdown(lessons: Sequence[str] = LESSONS) -> str:
    """The summary as one Markdown table, with where each lesson's rows come from and the versions they ran."""
    lines = ["| server | way of leaving | endpoint shape | what happens (measured) | the fix | lesson |",
             "|---|---|---|---|---|---|"]
    sources = []
    for lesson in lessons:
        record, source = lesson_record(lesson)
        versions = ""
        if record is not None:
            rows = record.get("findings", [])
            assert isinstance(rows, list)
            for row in rows:
                lines.append("| " + " | ".join(_cell(str(row[k])) for k in
                                                 ("server", "leaving", "shape", "happens", "fix")) + f" | {lesson} |")
            found = record.get("versions", {})
            assert isinstance(found, dict)
            versions = " (" + ", ".join(f"{k} {v}" for k, v in found.items() if v != "missing") + ")"
        sources.append(f"- notebook {lesson}: {source}{versions}")
    return "\n".join(lines) + "\n\n" + "\n".join(sources) + "\n"


def show_summary(lessons: Sequence[str] = LESSONS) -> None:
    """Show the summary in the notebook (Markdown), or print it outside one."""
    text = summary_markdown(lessons)
    from IPython.core.getipython import get_ipython

    if get_ipython() is None:
        print(text)
        return
    from IPython.display import Markdown, display

    display(Markdown(text))


def freeze(lessons: Sequence[str] = LESSONS) -> Path:
    """Write the rows measured here for every lesson into ``findings_recorded.json`` (a maintainer's step)."""
    frozen = {}
    for lesson in lessons:
        measured = _load(_folder() / f"{lesson}.json")
        if measured is None:
            raise LabError(f"Notebook {lesson} has recorded nothing here; run it first.")
        frozen[lesson] = measured
    RECORDED.write_text(json.dumps(frozen, indent=1) + "\n")
    return RECORDED


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["freeze"]:
        print(f"wrote {freeze()}")
    elif not argv:
        print(summary_markdown())
    else:
        print("usage: python -m helpers.findings [freeze]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
