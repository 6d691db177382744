"""Importing TensorFlow quietly and lightly: what every process that loads it shares."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

# TensorFlow's C++ start-up notices, written through absl before TF_CPP_MIN_LOG_LEVEL applies
# (TF 2.21), once per shared library: absl's preamble and oneDNN's 280-character
# "oneDNN custom operations are on ..." (an INFO line; TF_ENABLE_ONEDNN_OPTS=0 would silence it
# by changing the kernels).
TF_START_UP_NOTICES = (
    "WARNING: All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on.",
)


# Packages Keras imports only when they are installed, for features no stage uses, and that
# TensorFlow's import therefore pulls in (it imports Keras): scikit-learn for Keras' scikit-learn
# wrappers (``keras.wrappers``; MLflow installs it), matplotlib with pyplot for Keras' image
# galleries (``keras.visualization``). Skipping them saves seconds and tens of MB in every
# TensorFlow process (measured in benchmarks/README.md). During the first import they are
# hidden (``sys.modules`` maps them to None, so importing them raises ImportError) and Keras
# defines those features as it does without them; afterwards they import as usual (the figures
# need matplotlib, never pyplot).
TENSORFLOW_IMPORT_SKIPS = ("sklearn", "matplotlib")

# TensorFlow's oneDNN kernels (convolution, pooling, fused BatchNormalization) are on by default
# only on CPUs with AVX-512 VNNI, BF16 or AMX; on an AVX2-only CPU (most laptops, AMD Zen 1-3)
# TF falls back to Eigen's convolutions, which train the networks here 1.6-3x slower
# (benchmarks/README.md, "oneDNN on AVX2 CPUs"). Every process that imports TensorFlow through
# :func:`importing_tensorflow` turns them on unless the user has set the variable (``0`` keeps
# Eigen's kernels).
ONEDNN_SWITCH = "TF_ENABLE_ONEDNN_OPTS"


def onednn_enabled() -> bool:
    """Whether TensorFlow, imported through :func:`importing_tensorflow`, uses oneDNN."""
    return os.environ.get(ONEDNN_SWITCH, "1").strip().lower() not in ("0", "false", "off")


@contextlib.contextmanager
def importing_tensorflow() -> Iterator[None]:
    """Import TensorFlow (or Keras) inside this block, the first time: its start-up notices
    (``TF_START_UP_NOTICES``) are dropped from stderr, everything else written to it meanwhile
    follows when the block ends, and the packages of ``TENSORFLOW_IMPORT_SKIPS`` are not
    imported with it; oneDNN's kernels are on unless ``TF_ENABLE_ONEDNN_OPTS`` says otherwise
    (``ONEDNN_SWITCH``). Nothing changes once TensorFlow is loaded."""
    if "tensorflow" in sys.modules:
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # both before TensorFlow reads them
    os.environ.setdefault(ONEDNN_SWITCH, "1")
    hidden = [name for name in TENSORFLOW_IMPORT_SKIPS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            for name in hidden:
                if name in sys.modules and sys.modules[name] is None:
                    del sys.modules[name]
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            for line in held.read().decode(errors="replace").splitlines(keepends=True):
                if not any(notice in line for notice in TF_START_UP_NOTICES):
                    sys.stderr.write(line)
            sys.stderr.flush()
