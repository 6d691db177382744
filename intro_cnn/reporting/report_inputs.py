"""What the report page shows, read from disk: every upstream stage's outputs the page embeds.

:func:`read_inputs` gathers them into one :class:`ReportInputs`; :mod:`intro_cnn.reporting.report`
renders it. A missing input is a :class:`~intro_cnn.reporting.errors.ReportError` naming the
stage that makes it.
"""

from __future__ import annotations

import csv
import importlib.metadata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from intro_cnn import config, tracking
from intro_cnn.reporting import drawpad, playground, playground_inputs
from intro_cnn.reporting.errors import ReportError, raising
from intro_cnn.runtime import files

# The convolution stage's figures, in the notebook's order (file stems under CONV_DIR).
CONV_FIGURES = (
    "01_random_walk",
    "02_gaussian_1d",
    "03_image",
    "04_gaussian_2d",
    "05_blurred",
    "06_grey",
    "07_gradient_filter",
    "08_edges",
)


@dataclass(frozen=True)
class LayerRow:
    """One line of a model summary table."""

    name: str
    type: str
    output_shape: str
    params: int


@dataclass(frozen=True)
class NetworkFigure:
    """A figure of the visualize stage, as listed in its ``index.json``."""

    file: str
    kind: str
    models: tuple[str, ...]
    png: bytes


@dataclass(frozen=True)
class ReportInputs:
    """Everything the page shows, already read from disk."""

    conv_figures: Sequence[tuple[str, bytes]]  # (file stem, PNG bytes), in CONV_FIGURES order
    network_figures: Sequence[NetworkFigure]
    summaries: Mapping[str, Sequence[LayerRow]]  # per model, in params order
    comparison: Sequence[Mapping[str, str]]  # rows of reports/comparison.csv
    claims: Sequence[Mapping[str, Any]]  # reports/compare/claims.json
    sources: Mapping[str, Any]  # data/raw/sources.json
    runs: Mapping[str, Mapping[str, Any]]  # reports/compare/runs.json
    params_text: str  # params.yaml as written
    provenance: Mapping[str, str] = field(default_factory=dict)
    # The drawing pad: the layers of drawpad.PAD_MODEL, its script and style (empty: no pad).
    pad_layers: Sequence[drawpad.PadLayer] = ()
    pad_assets: tuple[str, str] = ("", "")
    # The convolution playground: the convolutions stage's playground.json, script and style.
    playground: Mapping[str, Any] = field(default_factory=dict)
    playground_assets: tuple[str, str] = ("", "")
    # Each model's ``seeds`` entry of reports/compare/metrics.json (n, mean, interval...).
    spread: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def read_conv_figures(directory: Path = config.CONV_DIR) -> list[tuple[str, bytes]]:
    missing = [s for s in CONV_FIGURES if not (directory / f"{s}.png").exists()]
    if missing:
        raise ReportError(
            f"{directory} lacks {', '.join(f'{s}.png' for s in missing)}: "
            "run `dvc repro convolutions` first."
        )
    return [(s, (directory / f"{s}.png").read_bytes()) for s in CONV_FIGURES]


def read_network_figures(directory: Path = config.NETWORK_DIR) -> list[NetworkFigure]:
    index = files.read_json(files.require(directory / config.FIGURES_INDEX, "dvc repro visualize"))
    out = []
    for entry in index.get("figures", []):
        path = directory / entry["file"]
        if not path.exists():
            raise ReportError(
                f"{path} is listed in {config.FIGURES_INDEX} but missing: rerun visualize."
            )
        out.append(
            NetworkFigure(
                entry["file"], entry["kind"], tuple(entry.get("models", ())), path.read_bytes()
            )
        )
    return out


def read_compare_metrics(path: Path = config.COMPARE_METRICS) -> dict[str, Any]:
    """The DVC metrics compare wrote, by model (the figures and the page read it here)."""
    metrics = files.read_json(files.require(path, "dvc repro compare"))
    if not isinstance(metrics, dict):
        raise ReportError(f"{path}: expected a mapping of model to metrics; rerun compare.")
    return metrics


def read_comparison(path: Path = config.COMPARISON_CSV) -> list[dict[str, str]]:
    with open(files.require(path, "dvc repro compare"), newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def model_summaries(names: Sequence[str]) -> dict[str, list[LayerRow]]:
    """Each model's layer table, as its evaluation recorded it."""
    out = {}
    for name in names:
        path = files.require(
            config.eval_dir(name) / config.EVAL_LAYERS, f"dvc repro evaluate@{name}"
        )
        try:
            out[name] = [LayerRow(**row) for row in files.read_json(path)]
        except TypeError as exc:
            raise ReportError(
                f"{path} is not a layer table ({exc}): rerun evaluate@{name}."
            ) from exc
    return out


def read_pad(names: Sequence[str]) -> tuple[list[drawpad.PadLayer], tuple[str, str]]:
    """The drawing pad's model layers and assets; no pad when its model is not in params."""
    if drawpad.PAD_MODEL not in names:
        return [], ("", "")
    path = files.require(
        config.model_path(drawpad.PAD_MODEL), f"dvc repro train@{drawpad.PAD_MODEL}"
    )
    return drawpad.read_keras_file(path), drawpad.read_assets()


def read_inputs(names: Sequence[str], params_path: Path = Path(config.PARAMS_FILE)) -> ReportInputs:
    """Read every input of the page (the drawing pad's model last); a file that cannot be read
    or parsed (the pad's model included) is a :class:`ReportError` with the reader's message."""
    with raising(ReportError):
        inputs = ReportInputs(
            conv_figures=read_conv_figures(),
            network_figures=read_network_figures(),
            summaries=model_summaries(names),
            comparison=read_comparison(),
            claims=files.read_json(files.require(config.COMPARE_CLAIMS, "dvc repro compare")),
            sources=files.read_json(files.require(config.RAW_SOURCES, "dvc repro download")),
            runs=files.read_json(files.require(config.COMPARE_RUNS, "dvc repro compare")),
            params_text=params_path.read_text(encoding="utf-8"),
            provenance={
                **tracking.provenance_tags(),
                "keras": importlib.metadata.version("keras"),
            },
        )
        spread = {n: dict(e.get("seeds") or {}) for n, e in read_compare_metrics().items()}
        pad_layers, pad_assets = read_pad(names)
        live = playground_inputs.read()
        live_assets = playground.read_assets()
    return replace(
        inputs,
        pad_layers=pad_layers,
        pad_assets=pad_assets,
        spread=spread,
        playground=live,
        playground_assets=live_assets,
    )
