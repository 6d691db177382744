"""What every stage's ``main()`` shares: exit codes, signals, and one line per failure.

A stage wraps its work in :func:`stage`::

    def main() -> None:
        with cli.stage("preprocess"):
            params = config.load_params()   # before anything heavy is imported
            ...

and gets, for every way it can end early, one log line and a distinct exit status (never a
traceback): a bad ``params.yaml`` exits 2, Ctrl-C 130, SIGTERM 143, an exhausted memory 1.
SIGTERM is turned into an exception like Ctrl-C, so ``finally`` blocks and context managers
(temporary files, MLflow runs, which then end as FAILED) clean up on the way out. Outputs are
written at the very end of each stage, inside :func:`committing`, which holds a signal back
until the last file is in place: an interrupted stage leaves its previous outputs or a complete
new set, never a mix. Its last line says which: a signal before the commit wrote nothing; one
during it (or after it) stops the stage once the new set is complete, and since the stage
exits non-zero DVC does not record that set: ``dvc commit -f <stage>`` does (a plain ``dvc
repro <stage>`` would check the previous outputs out of DVC's run cache, or run it again).

Run as a program, a stage calls :func:`run_main` (``if __name__ == "__main__":
cli.run_main(main)``), which skips the interpreter's last garbage collection on the way out.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from types import FrameType

from intro_cnn.runtime.errors import (
    EXIT_FAILED,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    ConfigError,
    ProjectError,
)

log = logging.getLogger("stages")

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the stage happens to be (as KeyboardInterrupt is for SIGINT).

    A KeyboardInterrupt subclass, so ``except Exception`` blocks do not swallow it.
    """


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


# Whether the running stage's outputs are in place (a ``committing`` block has written them
# all), and whether that block held the signal back; both reset when a stage starts.
_outputs_written = False
_signal_held = False


def dvc_stage_name(name: str) -> str:
    """The DVC stage a stage run is: ``$DVC_STAGE`` (set by ``dvc repro`` / ``dvc exp run``
    for every command it runs, e.g. ``train@cnn``), else ``name`` with ``@`` for its space."""
    return os.environ.get("DVC_STAGE", "").strip() or name.replace(" ", "@")


def interrupted_message(name: str, how: str) -> str:
    """The one line a stage stopped by a signal ends with: what it left, and what to run."""
    if not _outputs_written:
        return (
            f"{name}: {how} before writing its outputs: none was written, no partial "
            "outputs were left."
        )
    target = dvc_stage_name(name)
    when = (
        "it came while they were being written and was held until the last file was in place"
        if _signal_held
        else "it came after the last file was in place"
    )
    return (
        f"{name}: {how}, but only after its outputs were completely written ({when}). DVC "
        f"has not recorded them (dvc.lock was not updated): run `dvc commit -f {target}` to "
        f"record them as they are. A plain `dvc repro {target}` would not: it checks the "
        "previous outputs out of DVC's run cache, or runs the stage again."
    )


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Run a stage body with the shared exit codes; see the module docstring."""
    global _outputs_written, _signal_held
    _outputs_written = _signal_held = False
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    except ProjectError as exc:
        log.error("%s: %s" if isinstance(exc, ConfigError) else "%s failed: %s", name, exc)
        sys.exit(exc.exit_status)
    except Terminated:
        log.error("%s", interrupted_message(name, "terminated (SIGTERM)"))
        sys.exit(EXIT_SIGTERM)
    except KeyboardInterrupt:
        log.error("%s", interrupted_message(name, "interrupted (Ctrl-C)"))
        sys.exit(EXIT_SIGINT)
    except MemoryError:
        log.error(
            "%s: out of memory; nothing was written. Lower the sizes in params.yaml (batch "
            "sizes, data.image_max_pixels, report.dpi) or free memory, then rerun.",
            name,
        )
        sys.exit(EXIT_FAILED)
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_main(main: Callable[[], None]) -> None:
    """Run a stage's ``main()`` as a program, then exit without the final garbage collection.

    At exit CPython collects every object the process still holds; once TensorFlow is loaded
    that is over a million objects, and most of a TensorFlow stage's exit is spent there
    (measured in benchmarks/README.md). ``gc.freeze()`` moves them to the permanent
    generation, which that collection skips. Nothing else changes: ``atexit`` handlers still
    run, logging is flushed, and outputs are complete files long before (``committing``).
    Tests call ``main()`` itself and keep their collector.
    """
    try:
        main()
    finally:
        gc.freeze()


@contextlib.contextmanager
def stopping_gently(stop: Callable[[], None]) -> Iterator[None]:
    """Turn the first SIGINT or SIGTERM into ``stop()``, then raise it once the block ends.

    For code that must not be unwound from wherever the signal lands, such as Keras' ``fit``:
    an exception raised between two steps while TensorFlow's input threads still run can
    corrupt the heap as the half-consumed iterator is torn down (``free(): invalid next size``,
    exit -6 instead of 143). ``stop`` asks the loop to finish at its next step; the block then
    returns normally and the signal is delivered as :class:`Terminated` or KeyboardInterrupt.
    A second signal is delivered at once, for a user who does not want to wait.
    """
    caught: list[int] = []

    def request(signum: int, frame: FrameType | None) -> None:
        if caught:
            _deliver(signum)
        caught.append(signum)
        stop()

    with _handling(request):
        yield
    if caught:
        _deliver(caught[0])


@contextlib.contextmanager
def _handling(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """``handler`` for SIGINT and SIGTERM inside the block; the previous handlers after it."""
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _deliver(signum: int) -> None:
    if signum == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt()


@contextlib.contextmanager
def committing() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while a stage writes its outputs, then deliver them.

    Once the block has ended normally the outputs are complete, and the stage's last line says
    so if a signal (held here, or arriving later) stops it.
    """
    global _outputs_written, _signal_held
    caught: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    with _handling(hold):
        yield
        _outputs_written = True
    if caught:
        _signal_held = True
        _deliver(signal.SIGTERM if signal.SIGTERM in caught else caught[0])
