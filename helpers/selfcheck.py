"""A self-check at the end of a lesson: two or three questions about what the notebook measured.

    QUESTIONS = [
        Question("How many handlers were still running 1 s after the ten clients left?",
                 answer=after_leaving[0], unit="handlers", where="section 1, the cell that prints '1 s after'"),
        Question("Which exception did uvicorn log?", choices={"a": "RuntimeError", "b": "WebSocketDisconnect"},
                 answer="b", why="Starlette turns uvicorn's ClientDisconnected into it.", where="section 2"),
    ]
    my_answers = {}          # e.g. {1: 10, 2: "b"}
    self_check(QUESTIONS, my_answers)

The learner answers by number of question and runs the cell again; each answer gets its feedback and the cell
that measured it. Unanswered questions say so and give nothing away. A numeric answer comes from the notebook's
own measurement, so the key follows what the installed versions do.

Why a helper of our own rather than jupyterquiz (PyPI, MIT, 2.9.6.4 judged): jupyterquiz renders its quizzes
with JavaScript in the browser, so the answers are judged there, never in the kernel: a headless run, the test
suite and a terminal see nothing, and the key cannot be checked against the notebook's measurements. It also
loads MathJax from a CDN in JupyterLab (a room with no network), and each quiz gets a random element id (outputs
differ at every run). This helper is plain Python and text: answered like the lab's predictions (a variable, then
run the cell), shown in JupyterLab, on the website and in a terminal alike, and tested like the rest of the lab.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from helpers.errors import LabError


@dataclass(frozen=True)
class Question:
    """One question: multiple choice (``choices`` letter -> text, ``answer`` a letter) or numeric (``answer`` a
    number, ``unit``, right within ``tolerance`` as a fraction). ``why`` explains the answer; ``where`` names the
    cell that measured it (a section and what the cell prints), where a wrong answer sends the learner back."""

    text: str
    answer: str | float
    where: str
    why: str = ""
    choices: Mapping[str, str] = field(default_factory=dict)
    unit: str = ""
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.choices and self.answer not in self.choices:
            raise LabError(f"The answer {self.answer!r} is not one of the choices {', '.join(self.choices)}.")
        if not self.choices and isinstance(self.answer, str):
            raise LabError(f"A question without choices needs a number as its answer, not {self.answer!r}.")

    def judge(self, given: object) -> tuple[bool, str]:
        """(right?, one-line feedback) for the learner's answer ``given``."""
        if self.choices:
            letter = str(given).strip().lower()
            if letter not in {k.lower() for k in self.choices}:
                return False, f"{given!r} is not one of {', '.join(self.choices)}."
            right = letter == str(self.answer).lower()
        else:
            try:
                number = float(given)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return False, f"{given!r} is not a number."
            measured = float(self.answer)
            right = abs(number - measured) <= self.tolerance * abs(measured) + 1e-9
        if right:
            return True, "Right." + (f" {self.why}" if self.why else "")
        return False, f"Not quite: look again at {self.where}."


def render(questions: Sequence[Question], answers: Mapping[int, object]) -> str:
    """The self-check as Markdown: each question, its choices, and the feedback on the answer given, if any."""
    lines = ["**Self-check.** Answer in `my_answers` (question number → letter or number) and run the cell again.", ""]
    score = 0
    for number, question in enumerate(questions, 1):
        lines.append(f"**{number}.** {question.text}" + (f" (in {question.unit})" if question.unit else ""))
        for key, text in question.choices.items():
            lines.append(f"   - {key}) {text}")
        if number in answers and answers[number] is not None:
            right, feedback = question.judge(answers[number])
            score += right
            lines.append(f"   {'✅' if right else '❌'} You answered {answers[number]!r}. {feedback}")
        else:
            lines.append("   ⬜ Not answered yet.")
        lines.append("")
    unknown = sorted(set(answers) - set(range(1, len(questions) + 1)), key=str)
    if unknown:
        lines.append(f"There is no question {', '.join(map(str, unknown))}; the questions are 1 to {len(questions)}.")
    lines.append(f"{score} of {len(questions)} right.")
    return "\n".join(lines)


def self_check(questions: Sequence[Question], answers: Mapping[int, object] | None = None) -> None:
    """Show the self-check (Markdown in a notebook, text elsewhere) with feedback on ``answers``."""
    if not 1 <= len(questions) <= 5:
        raise LabError(f"A self-check has one to five questions, not {len(questions)}.")
    text = render(questions, answers or {})
    from IPython.core.getipython import get_ipython

    if get_ipython() is None:
        print(text)
        return
    from IPython.display import Markdown, display

    display(Markdown(text))
