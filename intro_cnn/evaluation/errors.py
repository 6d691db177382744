"""The evaluate and compare stages' failures, and the one place their file and model reads and
writes turn a low-level error into one.

Both errors are :class:`~intro_cnn.runtime.errors.StageError` subclasses, so the stage runner
(:func:`intro_cnn.runtime.cli.stage`) logs them as one line and exits 1.
"""

from __future__ import annotations

from intro_cnn.runtime.errors import StageError, reported_as

__all__ = ["CompareError", "EvaluationError", "reported_as"]


class EvaluationError(StageError):
    """An input of the evaluate stage is missing or malformed (the message says which and how
    to fix it)."""


class CompareError(StageError):
    """An input of the compare stage is missing or malformed (the message says which and how
    to fix it)."""
