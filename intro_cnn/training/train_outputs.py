"""What one training leaves behind, from its per-epoch history: ``history.csv``, the DVC
metrics, ``timing.json``, the model summary, and the ``.keras`` file, saved so that the same
weights give the same bytes. Pure except :func:`save_model`, which writes one file atomically;
Keras is never imported here (the model is passed in).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intro_cnn import config
from intro_cnn.runtime import files
from intro_cnn.runtime.errors import StageError

# history.csv holds what an identical rerun reproduces exactly; wall-clock numbers (seconds per
# epoch, throughput) go to timing.json, which DVC tracks but does not treat as metrics.
HISTORY_COLUMNS = ("epoch", "accuracy", "loss", "val_accuracy", "val_loss")


@dataclass(frozen=True)
class TrainResult:
    history: list[dict[str, float]]  # one row per epoch: HISTORY_COLUMNS and "seconds"
    wall_seconds: float  # the whole fit, first-epoch graph tracing included
    samples_per_second: float  # training samples processed per wall second
    n_train: int
    n_val: int


def read_history(name: str) -> list[dict[str, str]]:
    """Model ``name``'s ``history.csv`` as the train stage wrote it (:func:`read_history_file`)."""
    return read_history_file(config.history_path(name), f"dvc repro train@{name}")


def read_history_file(path: Path, rerun: str) -> list[dict[str, str]]:
    """A ``history.csv`` as a training wrote it: one row per epoch, epoch 1 first, every column
    of :data:`HISTORY_COLUMNS` present and numeric (values kept as their text, so a table
    gathered from them repeats them byte for byte). ``rerun`` is the command that rewrites it."""
    path = files.require(path, rerun)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = set(HISTORY_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise StageError(f"{path}: missing column(s) {sorted(missing)}; run `{rerun}`.")
        rows = list(reader)
    try:
        rows.sort(key=lambda r: int(r["epoch"]))
        for row in rows:
            for column in HISTORY_COLUMNS[1:]:
                float(row[column])
    except (TypeError, ValueError) as exc:
        raise StageError(f"{path}: not a number ({exc}); run `{rerun}`.") from exc
    if not rows:
        raise StageError(f"{path} has no epochs; run `{rerun}`.")
    return rows


def history_csv(rows: list[dict[str, float]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n", extrasaction="ignore"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{row[k]:.6g}" if k != "epoch" else row[k]) for k in HISTORY_COLUMNS})
    return buf.getvalue()


def metrics_summary(result: TrainResult, n_params: int) -> dict[str, Any]:
    """The DVC metrics of one training: only numbers an identical rerun reproduces exactly."""
    last = result.history[-1]
    return {
        "train": {"accuracy": round(last["accuracy"], 6), "loss": round(last["loss"], 6)},
        "val": {"accuracy": round(last["val_accuracy"], 6), "loss": round(last["val_loss"], 6)},
        "epochs": len(result.history),
        "params": int(n_params),
        "n_train": result.n_train,
    }


def timing_summary(result: TrainResult) -> dict[str, Any]:
    """Wall-clock measurements of one training (timing.json): they differ on every run."""
    return {
        "wall_seconds": round(result.wall_seconds, 2),
        "samples_per_second": round(result.samples_per_second, 1),
        "epoch_seconds": [row["seconds"] for row in result.history],
    }


def model_summary_text(model: Any) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line), line_length=100)
    return "\n".join(lines) + "\n"


def _without_save_date(metadata: bytes) -> bytes:
    """Keras' metadata.json without ``date_saved`` (written on save, never read on load)."""
    meta = json.loads(metadata)
    meta.pop("date_saved", None)
    return json.dumps(meta, sort_keys=True).encode()


def _numbered_shared_objects(config_json: bytes) -> bytes:
    """Keras' config.json with each ``shared_object_id`` (a Python ``id()``, so a memory
    address that differs per process) replaced by its rank of first appearance: the same
    objects stay shared on load, and the same model gives the same text."""
    ranks: dict[Any, int] = {}

    def renumber(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: renumber(v) for k, v in node.items()}
            if "shared_object_id" in node:
                out["shared_object_id"] = ranks.setdefault(node["shared_object_id"], len(ranks))
            return out
        if isinstance(node, list):
            return [renumber(v) for v in node]
        return node

    return json.dumps(renumber(json.loads(config_json))).encode()


def save_model(model: Any, target: Path) -> None:
    """Save ``model`` as ``.keras`` so that the same weights give the same bytes.

    Keras stamps the archive with the save date (in ``metadata.json`` and on the weights
    member) and writes Python object ids into ``config.json``; all three are made
    deterministic here, so an identical retraining leaves the file, and DVC's view of every
    stage downstream of it, unchanged. The HDF5 weights file itself is stable (h5py records no
    object times by default); tests/training/test_train.py compares whole files across processes.
    """
    with files.atomic_path(target, suffix=".keras") as tmp:  # Keras insists on the suffix
        model.save(tmp)
        files.restamp_zip(
            tmp,
            {"metadata.json": _without_save_date, "config.json": _numbered_shared_objects},
        )


def model_file_sha256(model: Any) -> str:
    """The SHA-256 of the file :func:`save_model` writes for ``model`` (saved to a temporary
    folder: the registry records it before the stage commits its outputs)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        save_model(model, path)
        return files.file_sha256(path)
