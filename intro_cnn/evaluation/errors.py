"""The evaluate and compare stages' failures, and the one place their file and model reads and
writes turn a low-level error into one.

Both errors are :class:`~intro_cnn.runtime.errors.StageError` subclasses, so the stage runner
(:func:`intro_cnn.runtime.cli.stage`) logs them as one line and exits 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from intro_cnn.runtime.errors import StageError


class EvaluationError(StageError):
    """An input of the evaluate stage is missing or malformed (the message says which and how
    to fix it)."""


class CompareError(StageError):
    """An input of the compare stage is missing or malformed (the message says which and how
    to fix it)."""


@contextlib.contextmanager
def reported_as(error: type[StageError]) -> Iterator[None]:
    """Around a read or write of the stage's files (or of a model file): an ``OSError`` or
    ``ValueError`` it raises (unreadable, corrupt or unwritable) becomes ``error``, with the
    same message."""
    try:
        yield
    except (OSError, ValueError) as exc:
        raise error(str(exc)) from exc
