"""The lesson machinery the notebooks share: predictions, the self-check, the summary of findings, the plot style."""

import json

import pytest

from helpers import findings
from helpers.errors import LabError
from helpers.findings import Finding, record_findings, summary_markdown
from helpers.plot import compare_figure, labelled_lines, paired_panels, small_multiples, workers_figure
from helpers.prediction import record_guess, reveal, reveal_guess, reveal_unmeasured
from helpers.sample import Sample
from helpers.selfcheck import Question, render
from helpers.timeline import Timeline

pytestmark = pytest.mark.fast  # every test here is pure: no process, no server


def test_a_numeric_reveal_says_how_far_off_the_guess_was_and_on_which_side():
    assert reveal_guess(3, 10, "handlers").startswith("Your guess was 3 handlers: 7 handlers too low.")
    assert reveal_guess(12, 10, "handlers").startswith("Your guess was 12 handlers: 2 handlers too high (within 20%")
    assert reveal_guess(10, 10, "handlers").startswith("Your guess, 10 handlers, is exactly what was measured.")


def test_an_unanswered_prediction_still_says_so_and_gives_the_measurement():
    assert reveal_guess(None, 1.5, "s") == "You made no prediction.\nMeasured: 1.5 s"
    assert reveal(None, {"C"}, {"A": "a", "C": "c"}).startswith("You made no prediction.")


def test_a_reveal_with_no_measurement_says_the_prediction_was_not_checked_and_labels_the_answer_recorded():
    text = reveal_unmeasured("A", {"B"}, {"A": "a.", "B": "b"}, why="no browser", recorded_where="where one runs")
    assert text.splitlines() == [
        "Not measured here: no browser.",
        "Your prediction was A) a; the recorded answer differs, but it was not checked here.",
        "Recorded answer (where one runs): B) b",
    ]
    assert "matches the measurement" not in reveal_unmeasured("B", {"B"}, {"B": "b"}, why="x", recorded_where="y")


def test_a_guess_that_is_not_a_number_records_nothing(capsys):
    assert record_guess("ten", "How many?", "handlers") is None  # type: ignore[arg-type]  # as a learner types it
    assert "is not a number; nothing recorded" in capsys.readouterr().out


QUESTIONS = [
    Question("How many handlers stayed?", answer=10, unit="handlers", where="section 1, the cell printing '1 s after'"),
    Question("Which one?", choices={"a": "this", "b": "that"}, answer="b", why="Because.", where="section 2"),
]


def test_an_unanswered_self_check_gives_nothing_away():
    text = render(QUESTIONS, {})
    assert text.count("Not answered yet.") == 2 and "Because." not in text and "0 of 2 right." in text


def test_a_wrong_answer_points_to_the_cell_that_measured_it_and_a_right_one_explains():
    text = render(QUESTIONS, {1: 3, 2: "B"})
    assert "look again at section 1, the cell printing '1 s after'" in text
    assert "Right. Because." in text and "1 of 2 right." in text


def test_a_question_whose_key_is_not_among_its_choices_is_refused_in_one_sentence():
    with pytest.raises(LabError, match="is not one of the choices"):
        Question("?", choices={"a": "x"}, answer="c", where="here")


def test_the_summary_shows_what_each_lesson_measured_here_else_what_was_recorded_labelled(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    recorded = tmp_path / "recorded.json"
    recorded.write_text(json.dumps({"03": {"date": "2026-12-01", "versions": {}, "findings": [
        {"server": "uvicorn", "leaving": "clean", "shape": "feed", "happens": "10 of 10 stay", "fix": "receive"}]}}))
    monkeypatch.setattr(findings, "RECORDED", recorded)
    record_findings("01", [Finding("uvicorn", "silent", "send loop", "5 of 5 stay", "pings")])
    page = summary_markdown(["01", "03", "04"])
    assert "| uvicorn | silent | send loop | 5 of 5 stay | pings | 01 |" in page
    assert "| uvicorn | clean | feed | 10 of 10 stay | receive | 03 |" in page
    assert "notebook 01: measured here on" in page and "notebook 03: RECORDED with the lab on 2026-12-01" in page
    assert "notebook 04: not measured yet: run notebook 04" in page


def test_a_figure_states_its_finding_and_keeps_its_legend_off_the_data():
    run = Timeline(title="before", watched=["handler"], gauges=[],
              samples=[Sample(t, {"handler": n}, {}, 0, n, 0) for t, n in [(0.0, 0), (0.5, 3), (1.0, 3)]])
    fig = compare_figure([run, run], finding="Ten handlers stay.")
    assert fig.get_suptitle() == "Ten handlers stay."
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert all(ax.get_xlabel().endswith("(s)") for ax in fig.axes)


def test_small_multiples_draw_one_panel_per_series_with_units_on_the_axes():
    fig = small_multiples({"uvicorn": [(0, 6), (2, 0)], "hypercorn": [(0, 6), (2, 6)]}, finding="One ends.",
                          xlabel="seconds since the clients left (s)", ylabel="loops alive (count)")
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["uvicorn", "hypercorn"]
    assert fig.axes[0].get_ylabel() == "loops alive (count)"


def test_labelled_lines_name_each_line_at_its_end_with_no_legend_and_hide_unused_panels():
    panels = {"Registry grows": {"leaky": ([1, 2], [1, 2]), "fixed": ([1, 2], [0, 0])},
              "Memory grows": {"leaky": ([1, 2], [5, 9]), "fixed": ([1, 2], [5, 5])},
              "CPU grows": {"leaky": ([1, 2], [1, 3]), "fixed": ([1, 2], [1, 1])}}
    fig = labelled_lines(panels, xlabel="sessions that have left", ylabels=["entries", "blocks", "ms"],
                         finding="Leaks.")
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title(loc="left") for ax in shown] == list(panels)
    assert all(ax.get_legend() is None for ax in shown)
    assert [t.get_text() for t in shown[0].texts] == ["leaky", "fixed"]
    assert len(fig.axes) - len(shown) == 1   # 3 panels on a 2 x 2 grid


def test_paired_panels_and_the_workers_figure_keep_the_measurements_marks_and_units():
    marks = [(0.5, "clients left")]
    fig = paired_panels([0, 1], {"bare": {"handlers": [4, 2], "Redis subscriptions": [4, 4]}}, marks=marks,
                        xlabel="seconds (s)", ylabel="count (all workers)", finding="Bare keeps them.")
    assert [t.get_text() for t in fig.axes[0].texts] == ["handlers 2", "Redis subscriptions 4", "clients left"]
    fig = workers_figure([0, 1], {"uvicorn-1": [2, 0], "uvicorn-2": [1, 1]}, None, marks=marks, xlabel="seconds (s)",
                         finding="")
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel() == "handlers (count)"
    assert fig.axes[0].lines[2].get_label() == "all workers"
    totals = fig.axes[0].lines[2].get_ydata()
    assert [int(y) for y in totals] == [3, 1]  # type: ignore[union-attr, arg-type]


def test_a_version_that_differs_from_the_pins_stops_a_lesson_but_not_under_the_canary(monkeypatch, capsys):
    from helpers import versions
    monkeypatch.setattr(versions, "mismatches", lambda: ["uvicorn 0.55.0 (pinned 0.54.0)"])
    monkeypatch.delenv(versions.CANARY, raising=False)
    with pytest.raises(AssertionError, match="differ from the lab's pins"):
        versions.check_pins()
    monkeypatch.setenv(versions.CANARY, "1")
    assert versions.check_pins() == ["uvicorn 0.55.0 (pinned 0.54.0)"]
    assert "Canary run: versions differ from the pins (uvicorn 0.55.0 (pinned 0.54.0))" in capsys.readouterr().out


def test_a_lessons_summary_leaves_out_the_later_lessons_whose_rows_would_answer_their_predictions():
    assert findings.lessons_up_to("05") == ("01", "04", "05")
    assert findings.lessons_up_to("11") == findings.LESSONS


def test_the_rows_recorded_with_the_lab_cover_every_lesson_of_the_summary():
    recorded = json.loads(findings.RECORDED.read_text())
    assert set(recorded) == set(findings.LESSONS)
    assert all(record["findings"] for record in recorded.values())
