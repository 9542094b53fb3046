"""The words of bad input: the one-line error, the "did you mean", and values shown as written.

Every message a user reads about their scenario is built from these pieces, so a typo gets
the same suggestion whether it is a key of the model, of a sweep or plan, a queue
discipline or a summary column. The modules that check input raise :class:`FieldError`
(a rule broken at a path below the model being validated) or :class:`ScenarioError` (the
finished line); :mod:`sim.model.explain` turns pydantic's errors into that line.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

import yaml


class ScenarioError(ValueError):
    """A scenario that cannot be run; the message is one line meant for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(re.sub(r"\s*\n\s*", " ", message).strip())


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


MISSING: Any = _Sentinel("MISSING")
"""The value of a key that was not given (``None`` may be a value someone wrote)."""

UNSHOWN: Any = _Sentinel("UNSHOWN")
"""A :class:`FieldError` value that is not worth quoting (the message says it all: a bad key)."""


class FieldError(ValueError):
    """A rule broken by a field below the model being validated; ``path`` is relative to it.

    ``value`` is the offending value, :data:`MISSING` when the problem is an absent key, or
    :data:`UNSHOWN` when the message names the problem itself; the message says what is
    allowed (it follows "got VALUE; " in what the user reads).
    """

    def __init__(self, message: str, path: tuple[str | int, ...], value: object) -> None:
        super().__init__(message)
        self.path = path
        self.value = value


def did_you_mean(value: object, allowed: Iterable[str], cutoff: float = 0.6) -> str:
    """``"did you mean 'fifo'? "`` when ``value`` is text close to one of ``allowed``, else ``""``.

    The one suggestion helper: unknown keys, choices, summary columns and sweep keys all use it.
    """
    if not isinstance(value, str):
        return ""
    choices = [str(choice) for choice in allowed]
    close = difflib.get_close_matches(value, choices, n=1, cutoff=cutoff)
    if not close and value != value.lower():
        close = difflib.get_close_matches(value.lower(), choices, n=1, cutoff=cutoff)
    return f"did you mean {close[0]!r}? " if close else ""


def one_of(value: object, allowed: Iterable[str]) -> str:
    """``did you mean 'fifo'? must be one of: fifo, lifo, priority``."""
    choices = list(allowed)
    return f"{did_you_mean(value, choices, cutoff=0.5)}must be one of: {', '.join(choices)}"


def describe(value: Any) -> str:
    """A value as the user wrote it in YAML, on one line and at most 80 characters."""
    if value is None or isinstance(value, bool):
        text = {None: "null (nothing)", True: "true", False: "false"}[value]
    elif isinstance(value, dict | list | tuple):
        try:
            text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
        except yaml.YAMLError:
            text = repr(value)
        text = text.removesuffix("\n...").removesuffix("...").strip()
    else:
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "..."


def prefix(text: str, limit: int = 40) -> str:
    """The start of a piece of someone else's file, quoted: never more than ``limit`` characters of it."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return repr(shown)
