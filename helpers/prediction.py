"""Predict before you run: record a prediction, then compare it with what was measured.

A prediction left as ``None`` is allowed (the notebook still runs top to bottom, e.g. in
the test suite); the learner is simply reminded that predicting first is the point.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def record_prediction(choice: str | None, choices: Mapping[str, str]) -> str | None:
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
    right = sorted(correct)
    answer = " and ".join(f"{k}) {choices[k]}" for k in right)
    if choice is None:
        verdict = "You made no prediction."
    elif choice in right:
        verdict = f"Your prediction {choice} matches the measurement."
    else:
        verdict = f"Your prediction was {choice}) {_clause(choices[choice])}; the measurement disagrees."
    return f"{verdict}\nWhat the measurement supports: {answer}"


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
