"""Every path the pipeline reads or writes, relative to the repository root: the single source
of truth, shared with ``dvc.yaml`` (tests/project/test_pipeline.py checks they agree). Pure:
importing it reads nothing and creates nothing."""

from __future__ import annotations

from pathlib import Path

from intro_cnn.runtime.errors import StageError

ROOT = Path(__file__).resolve().parents[2]
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
# Each model's test accuracy, mean over its seeds, and nothing else: the first DVC metrics file,
# so that `dvc exp show` and `dvc metrics show` begin with these columns.
COMPARE_ACCURACY = COMPARE_DIR / "accuracy.json"
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
# The report's convolution playground: the demo image reduced and the random walk.
CONV_PLAYGROUND = CONV_DIR / "playground.json"
REPORT_HTML = REPORTS_DIR / "index.html"


def model_path(name: str) -> Path:
    return MODELS_DIR / f"{name}.keras"


# Replicates (stage replicate@<model>-<seed>): the same network trained with another seed, to
# measure seed noise. Apart from the designated models/, so that no figure, serving or
# registry code that lists models/ ever picks one up.
REPLICATE_MODELS_DIR = Path("replicates")
REPLICATES_DIR = REPORTS_DIR / "replicates"
REPLICATE_METRICS = "metrics.json"
REPLICATE_HISTORY = "history.csv"
REPLICATE_RUN = "run.json"  # its MLflow run and wall-clock timing (not a metric)


def replicate_name(name: str, seed: int) -> str:
    """``cnn_small-2``: the DVC stage's matrix key, and the replicate's file names."""
    return f"{name}-{seed}"


def replicate_model_path(name: str, seed: int) -> Path:
    return REPLICATE_MODELS_DIR / f"{replicate_name(name, seed)}.keras"


def replicate_dir(name: str, seed: int) -> Path:
    """One replicate's test metrics and training history."""
    return REPLICATES_DIR / replicate_name(name, seed)


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
        raise StageError(f"No image.* in {directory}: run `dvc repro download` first.")
    return found[0]
