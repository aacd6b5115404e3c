"""Predict before you run: record a prediction, then compare it with what was measured.

Two kinds: a letter among choices (``record_prediction``/``reveal``), and a number where a number
fits (``record_guess``/``reveal_guess``: how many handlers, how many seconds), whose reveal says
how far off the guess was. A prediction left as ``None`` is allowed (the notebook still runs top
to bottom, e.g. in the test suite); the reveal then says that no prediction was made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def record_prediction(choice: str | None, choices: Mapping[str, str]) -> str | None:
    """Print the choices and record ``choice`` (a letter, any case); None or an unknown letter records nothing.

    Returns the recorded letter, to pass to ``reveal`` once the measurement is in."""
    for key, text in choices.items():
        print(f"  {key}) {text}")
    if choice is None:
        print("\nNo prediction recorded. Set my_prediction to one letter and re-run this cell before going on.")
        return None
    key = choice.strip().upper()
    if key not in choices:
        print(f"\n{choice!r} is not one of {', '.join(choices)}; nothing recorded.")
        return None
    print(f"\nRecorded: {key}) {choices[key]}")
    return key


def _clause(text: str) -> str:
    """A choice's text as part of a sentence: without its own closing punctuation (no ``.;``)."""
    return text.rstrip(" .;:!")


def reveal(choice: str | None, correct: Iterable[str], choices: Mapping[str, str]) -> str:
    """The verdict on a recorded letter: whether it matches the choices the measurement supports, and which."""
    right = sorted(correct)
    answer = " and ".join(f"{k}) {choices[k]}" for k in right)
    if choice is None:
        verdict = "You made no prediction."
    elif choice in right:
        verdict = f"Your prediction {choice} matches the measurement."
    else:
        verdict = f"Your prediction was {choice}) {_clause(choices[choice])}; the measurement disagrees."
    return f"{verdict}\nWhat the measurement supports: {answer}"


def reveal_unmeasured(choice: str | None, correct: Iterable[str], choices: Mapping[str, str], *,
                      why: str, recorded_where: str) -> str:
    """The verdict on a recorded letter when the measurement could not run here (``why``): it says that the
    prediction was not checked, and compares it with the answer the same cell measures and asserts where it
    can run (``recorded_where``), labelled as recorded, never as measured."""
    right = sorted(correct)
    answer = " and ".join(f"{k}) {choices[k]}" for k in right)
    if choice is None:
        verdict = "You made no prediction."
    elif choice in right:
        verdict = f"Your prediction {choice} agrees with the recorded answer, but it was not checked here."
    else:
        verdict = (f"Your prediction was {choice}) {_clause(choices[choice])}; the recorded answer differs, "
                   "but it was not checked here.")
    return (f"Not measured here: {why}.\n{verdict}\n"
            f"Recorded answer ({recorded_where}): {answer}")


def _number(value: float) -> str:
    return f"{value:g}" if float(value).is_integer() else f"{value:.2f}".rstrip("0").rstrip(".")


def record_guess(guess: float | None, question: str, unit: str) -> float | None:
    """Print the question and record a numeric ``guess`` in ``unit`` (e.g. "handlers", "s"); None records nothing.

    Returns the recorded number, to pass to ``reveal_guess`` once the measurement is in."""
    print(f"{question} (a number, in {unit})")
    if guess is None:
        print("\nNo prediction recorded. Set my_guess to a number and re-run this cell before going on.")
        return None
    try:
        number = float(guess)
    except (TypeError, ValueError):
        print(f"\n{guess!r} is not a number; nothing recorded.")
        return None
    print(f"\nRecorded: {_number(number)} {unit}")
    return number


def reveal_guess(guess: float | None, measured: float, unit: str, *, close: float = 0.2) -> str:
    """How far a numeric guess was from the measurement: exact, close (within ``close`` of it, as a fraction),
    or too high or too low by how much. With no guess, it says so and gives the measurement."""
    value = f"{_number(measured)} {unit}"
    if guess is None:
        return f"You made no prediction.\nMeasured: {value}"
    off = guess - measured
    if abs(off) < 1e-9:
        verdict = f"Your guess, {_number(guess)} {unit}, is exactly what was measured."
    else:
        side = "high" if off > 0 else "low"
        verdict = f"Your guess was {_number(guess)} {unit}: {_number(abs(off))} {unit} too {side}"
        if measured and abs(off) <= close * abs(measured):
            verdict += f" (within {close:.0%}: close)"
        verdict += "."
    return f"{verdict}\nMeasured: {value}"


_last_verdicts: dict[str, str] = {}


def verdict(topic: str, text: str, *, unchanged_because: str) -> str:
    """``text``, the measured result of an experiment; when the learner re-runs it (for example after editing
    the endpoint) and the result is word for word the same as last time, say so, and why the edit could not
    change it, instead of repeating the same sentence as if nothing had been checked."""
    previous = _last_verdicts.get(topic)
    _last_verdicts[topic] = text
    if previous == text:
        return f"{text}\nSame result as your last run: {unchanged_because}"
    return text
