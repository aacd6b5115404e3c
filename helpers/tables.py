"""Result tables: one row per case, short cells; HTML in a notebook, aligned text anywhere else.

    Table(("server", "handlers"), [("uvicorn", 0), ("hypercorn", 3)], caption="After the clients left")

A cell that ends with a ``Table`` shows it as a table (Jupyter calls ``_repr_html_``); ``print(table)``
and ``str(table)`` give the same rows as aligned text, for a terminal or a test. ``show_table(headers, rows)``
shows one from inside a cell (a function, a loop), and ``Table.markdown()`` gives it as a Markdown table.
A cell that is None shows as "-".
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def _text(value: object) -> str:
    return "-" if value is None else str(value)


@dataclass(frozen=True, repr=False)
class Table:
    """Columns, rows (one value per column, shown with ``str``), and an optional caption above them."""

    columns: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]
    caption: str = ""

    def __init__(self, columns: Sequence[str], rows: Iterable[Sequence[object]], caption: str = "") -> None:
        shaped = tuple(tuple(row) for row in rows)
        for row in shaped:
            if len(row) != len(columns):
                raise ValueError(f"A row has {len(row)} values for {len(columns)} columns: {row!r}.")
        object.__setattr__(self, "columns", tuple(columns))
        object.__setattr__(self, "rows", shaped)
        object.__setattr__(self, "caption", caption)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_text(v))}</td>" for v in row) + "</tr>"
                       for row in self.rows)
        caption = f"<caption style=\"text-align:left\">{html.escape(self.caption)}</caption>" if self.caption else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def markdown(self) -> str:
        """The table in Markdown (``|`` in a cell escaped, line breaks as spaces), its caption as a line above."""
        def cell(value: object) -> str:
            return _text(value).replace("|", "\\|").replace("\n", " ")

        lines = ["| " + " | ".join(map(cell, self.columns)) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(map(cell, row)) + " |" for row in self.rows]
        return "\n".join(([self.caption, ""] if self.caption else []) + lines)

    def __repr__(self) -> str:
        return str(self)

    def __str__(self) -> str:
        cells = [list(self.columns)] + [[_text(v) for v in row] for row in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
                 for row in cells]
        lines.insert(1, "  ".join("-" * width for width in widths))
        return "\n".join(([self.caption] if self.caption else []) + lines)


def show_table(headers: Sequence[str], rows: Iterable[Sequence[object]], caption: str = "") -> None:
    """Show the rows as a ``Table``: rendered in a notebook, printed as aligned text elsewhere."""
    table = Table(headers, rows, caption)
    from IPython.core.getipython import get_ipython

    if get_ipython() is None:
        print(table)
        return
    from IPython.display import display

    display(table)
