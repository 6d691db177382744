"""How TensorFlow and Keras run a training: seeds and op determinism, the dtype policy the
hardware supports natively, the distribution strategy, and whether the input is prefetched.

Each setting is a key of ``train`` in params.yaml; "auto" values are resolved here from the
machine (CPU flags, GPUs, oneDNN's environment).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from intro_cnn import config
from intro_cnn.runtime import tf_import
from intro_cnn.runtime.errors import ConfigError


def configure_tensorflow(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and TF, and optionally require deterministic TF ops (same params and
    data, identical history: ``train.deterministic``)."""
    with tf_import.importing_tensorflow():
        import keras
        import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def native_bfloat16(
    cpu_flags: frozenset[str], gpu_capabilities: list[tuple[int, int]], onednn: bool
) -> bool:
    """Whether training runs bfloat16 natively: on every GPU (compute capability >= 8.0,
    Ampere on), or, with no GPU, on a CPU with AMX-BF16 through oneDNN."""
    if gpu_capabilities:
        return all(cc >= (8, 0) for cc in gpu_capabilities)
    return onednn and "amx_bf16" in cpu_flags


def onednn_isa_cap() -> str:
    """oneDNN's instruction-set cap (``ONEDNN_MAX_CPU_ISA``, e.g. ``AVX2``; ``ALL`` when unset)."""
    return os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper() or "ALL"


def isa_cap_allows(cap: str, feature: str) -> bool:
    """Whether oneDNN capped at ``cap`` keeps its ``feature`` kernels (``"AMX"`` or ``"BF16"``).

    TensorFlow decides to hand bfloat16 to oneDNN from the CPU's flags alone, so under a cap
    that removes them (``AVX2`` on an AMX machine) a bfloat16 convolution fails outright.
    """
    if cap in ("ALL", "DEFAULT") or "AMX" in cap:
        return True
    return feature == "BF16" and "BF16" in cap


def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def resolve_precision(setting: str) -> str:
    """``train.precision`` as a Keras dtype policy name.

    "auto" is Keras' ``mixed_bfloat16`` (float32 weights, bfloat16 arithmetic, float32 softmax)
    where the hardware has bfloat16 units (:func:`native_bfloat16`), float32 elsewhere: it
    changes rounding, not the training recipe.
    """
    if setting != "auto":
        return setting
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        cc = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        capabilities.append(tuple(cc) if cc else (0, 0))
    amx = tf_import.onednn_enabled() and isa_cap_allows(onednn_isa_cap(), "AMX")
    native = native_bfloat16(_cpu_flags(), capabilities, amx)
    return "mixed_bfloat16" if native else "float32"


@contextlib.contextmanager
def distribution_scope(strategy: str) -> Iterator[int]:
    """Build, compile and fit inside this block; it yields the number of replicas.

    ``"mirrored"`` opens a ``tf.distribute.MirroredStrategy`` scope: one replica per local GPU
    (the CPU alone when there is none), gradients all-reduced each step, each batch of
    ``batch_size`` split across the replicas. ``"none"`` leaves Keras' default device.
    """
    if strategy == "none":
        yield 1
        return
    if strategy != "mirrored":
        raise ConfigError(
            f"Unknown strategy {strategy!r}: valid ones are {config.STRATEGY_CHOICES}."
        )
    import tensorflow as tf

    mirrored = tf.distribute.MirroredStrategy()
    with mirrored.scope():
        yield int(mirrored.num_replicas_in_sync)


def use_prefetch(setting: str) -> bool:
    """Resolve ``train.prefetch``: "auto" prefetches only when TF sees a GPU.

    Prefetching runs background threads; on a machine with few cores and no GPU they take a
    core away from the training step.
    """
    if setting == "auto":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return setting == "autotune"
