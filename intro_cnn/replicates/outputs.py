"""What one replicate leaves, written and read here only: its test and validation accuracy,
its validation accuracy per epoch, and the model file. Pure except the file reads; Keras is
never imported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from intro_cnn import config
from intro_cnn.runtime import files
from intro_cnn.runtime.errors import StageError
from intro_cnn.training.train_outputs import read_history_file


@dataclass(frozen=True)
class SeedResult:
    """One training of ``model`` with ``seed``: the numbers the claims and the gate compare."""

    model: str
    seed: int
    test_accuracy: float
    val_accuracy: float  # after the last epoch
    val_history: tuple[float, ...]  # validation accuracy per epoch, epoch 1 first


def metrics_json(seed: int, test: Mapping[str, float], history: Sequence[Mapping[str, float]]):
    """A replicate's ``metrics.json``: its seed, test metrics and last-epoch validation
    accuracy (only what an identical rerun reproduces)."""
    return {
        "seed": seed,
        "test": dict(test),
        "val": {"accuracy": round(float(history[-1]["val_accuracy"]), 6)},
        "epochs": len(history),
    }


def rerun(name: str, seed: int) -> str:
    return f"dvc repro replicate@{config.replicate_name(name, seed)}"


def read_replicate(name: str, seed: int) -> SeedResult:
    """Replicate ``name``/``seed`` as its stage wrote it; a missing or damaged file says which
    stage to rerun."""
    folder = config.replicate_dir(name, seed)
    fix = rerun(name, seed)
    data: Any = files.read_json(files.require(folder / config.REPLICATE_METRICS, fix))
    try:
        if int(data["seed"]) != seed:
            raise ValueError(f"it records seed {data['seed']}")
        test, val = float(data["test"]["accuracy"]), float(data["val"]["accuracy"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StageError(
            f"{folder / config.REPLICATE_METRICS}: missing or bad entry ({exc}); run `{fix}`."
        ) from None
    rows = read_history_file(folder / config.REPLICATE_HISTORY, fix)
    return SeedResult(name, seed, test, val, tuple(float(r["val_accuracy"]) for r in rows))
