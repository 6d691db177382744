"""The project's errors, and the exit status each kind of failure ends a program with.

Every expected failure is a :class:`ProjectError` whose message is the one line the user sees:
it names the problem and the fix. The library raises the subclass that says what went wrong
(a bad ``params.yaml``, a missing input, an unreachable store...) and the program's runner
(:func:`intro_cnn.runtime.cli.stage`) logs it and exits with :func:`exit_status`; no stage
catches and rewraps them. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

EXIT_OK = 0
EXIT_FAILED = 1  # the work failed, or a check the gate makes did
EXIT_CONFIG = 2  # the program cannot run as configured (params.yaml, arguments, the store)
EXIT_SIGINT = 128 + signal.SIGINT  # 130: Ctrl-C
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143: SIGTERM


class ProjectError(Exception):
    """A failure the program explains itself; its message is the one line the user sees."""

    exit_status = EXIT_FAILED


class StageError(ProjectError):
    """The stage's work failed: a missing or bad input, a failed write or download (exit 1)."""


class ConfigError(ProjectError):
    """The configuration is wrong: ``params.yaml`` against its schema, or a command's
    arguments; the message names the file, the key and the fix (exit 2)."""

    exit_status = EXIT_CONFIG


def exit_status(exc: ProjectError) -> int:
    """The exit status ``exc`` ends its program with."""
    return exc.exit_status


@contextlib.contextmanager
def reported_as(
    error: type[ProjectError], kinds: tuple[type[Exception], ...] = (OSError, ValueError)
) -> Iterator[None]:
    """Around a read or write of a stage's inputs or outputs: a low-level ``kinds`` error it
    raises (unreadable, corrupt or unwritable) becomes ``error``, with the same message."""
    try:
        yield
    except kinds as exc:
        raise error(str(exc)) from exc
