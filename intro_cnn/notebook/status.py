"""Whether the pipeline has run: the outputs the notebook reads, which are missing, in words.

The notebook shows the pipeline's numbers and never recomputes them, so its first cell says
what is missing and what to run (``make repro``) before any other cell fails on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from intro_cnn import config, i18n

REPRO_COMMAND = "make repro"


def expected_outputs(names: Sequence[str]) -> list[Path]:
    """What the notebook reads, relative to the root: the data, the demo image's folder, each
    model's file, training history and evaluation, and the comparison across models."""
    shared = [config.RAW_MNIST, config.RAW_IMAGE_DIR, config.PROCESSED_MNIST]
    per_model = [
        path
        for name in names
        for path in (
            config.model_path(name),
            config.history_path(name),
            config.train_metrics_path(name),
            config.eval_dir(name) / config.CONFUSION,
            config.eval_dir(name) / config.WRONG,
        )
    ]
    return [*shared, *per_model, config.COMPARE_METRICS, config.COMPARE_CLAIMS]


def _present(path: Path) -> bool:
    # A folder output (the demo image's) counts once something is in it.
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


@dataclass(frozen=True)
class Status:
    """The pipeline's outputs under ``root`` that the notebook needs and does not find."""

    root: Path
    names: tuple[str, ...]
    missing: tuple[Path, ...]

    @property
    def ready(self) -> bool:
        return not self.missing

    def message(self, lang: str) -> str:
        """What the first cell prints: ready, or the missing files and what to run."""
        if self.ready:
            return i18n.text(
                "notebook", "status_ready", lang, n=len(self.names), models=", ".join(self.names)
            )
        return i18n.text(
            "notebook",
            "status_missing",
            lang,
            n=len(self.missing),
            files=", ".join(p.as_posix() for p in self.missing),
            command=REPRO_COMMAND,
            root=self.root.as_posix(),
        )


def check(root: Path, names: Sequence[str]) -> Status:
    """Which of :func:`expected_outputs` for the models ``names`` are missing under ``root``."""
    missing = tuple(p for p in expected_outputs(names) if not _present(root / p))
    return Status(root=root, names=tuple(names), missing=missing)
