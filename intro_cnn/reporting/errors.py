"""The reporting stages' failures: :class:`~intro_cnn.runtime.errors.StageError` subclasses, so
:func:`intro_cnn.runtime.cli.stage` logs their message as the stage's one line and exits 1."""

from __future__ import annotations

import contextlib

from intro_cnn.runtime.errors import StageError, reported_as


class ReportError(StageError):
    """An input of the report stage is missing or malformed (the message says the fix)."""


class VisualizeError(StageError):
    """An input of the visualize stage is missing or malformed (the message says the fix)."""


def raising(error: type[StageError]) -> contextlib.AbstractContextManager[None]:
    """Turn a low-level failure inside the block (a file that cannot be read or parsed, an
    entry without a key it needs) into ``error``, its message unchanged."""
    return reported_as(error, (OSError, ValueError, KeyError))
