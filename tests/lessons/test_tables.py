"""Result tables: HTML in a notebook, aligned text elsewhere, Markdown on request."""

import pytest

from helpers.tables import Table, show_table

pytestmark = pytest.mark.fast  # every test here is pure: no process, no server


def test_a_table_renders_as_html_with_its_caption_and_escaped_cells():
    html = Table(("server", "left"), [("uvicorn", "<0>")], caption="After")._repr_html_()
    assert html.startswith("<table><caption") and "<th>server</th>" in html and "<td>&lt;0&gt;</td>" in html


def test_a_table_prints_as_aligned_columns():
    assert str(Table(("a", "long name"), [(1, 2), (333, 4)])).splitlines() == [
        "a    long name", "---  ---------", "1    2", "333  4"]


def test_a_row_with_the_wrong_number_of_values_is_a_clear_error():
    with pytest.raises(ValueError, match="A row has 1 values for 2 columns"):
        Table(("a", "b"), [(1,)])


def test_a_table_in_markdown_has_one_row_per_case_and_escapes_its_cells():
    assert Table(["server", "alive"], [["uvicorn", 0], ["a|b", None]]).markdown().splitlines() == [
        "| server | alive |", "|---|---|", "| uvicorn | 0 |", "| a\\|b | - |"]


def test_show_table_prints_the_aligned_text_outside_a_notebook(capsys):
    show_table(["server", "alive"], [["uvicorn", None]], caption="After")
    assert capsys.readouterr().out.splitlines() == ["After", "server   alive", "-------  -----", "uvicorn  -"]
