"""The model registry (intro_cnn/architectures/): architectures and parameter counts exactly as the
notebook's."""

from __future__ import annotations

import pytest

from intro_cnn import architectures, models
from intro_cnn.runtime.errors import ConfigError, StageError
from tests.conftest import needs_bfloat16_kernels


def _nontrainable(model) -> int:
    return sum(int(w.numpy().size) for w in model.non_trainable_weights)


@pytest.mark.parametrize(
    ("name", "total", "non_trainable"),
    [
        ("cnn", 61_482, 0),
        ("cnn_small", 14_178, 0),
        ("cnn_small_bn", 14_242, 32),
        ("mlp", 669_706, 0),
    ],
)
def test_parameter_counts(name, total, non_trainable):
    model = models.build_model(name)
    assert model.count_params() == total
    assert _nontrainable(model) == non_trainable
    assert model.input_shape == (None, 28, 28, 1)
    assert model.output_shape == (None, 10)


def test_cnn_layers_match_the_notebook():
    model = models.build_model("cnn")
    convs = models.conv_layers(model)
    assert [c.filters for c in convs] == [32, 32]
    assert convs[1].count_params() == 9_248
    assert all(c.padding == "valid" and c.kernel_size == (3, 3) for c in convs)
    assert model.get_layer("conv1").output.shape[1:] == (26, 26, 32)
    assert model.get_layer("pool2").output.shape[1:] == (5, 5, 32)


def test_batch_norm_follows_each_relu():
    names = [layer.name for layer in models.build_model("cnn_small_bn").layers]
    for i in (1, 2):
        conv, relu, bn = names.index(f"conv{i}"), names.index(f"relu{i}"), names.index(f"bn{i}")
        assert conv < relu < bn == relu + 1
    assert (
        sum(
            layer.count_params()
            for layer in models.build_model("cnn_small_bn").layers
            if "bn" in layer.name
        )
        == 64
    )


def test_unknown_model_lists_valid_names_and_how_to_add_one():
    with pytest.raises(ConfigError, match="cnn, cnn_small, cnn_small_bn, mlp") as info:
        models.build_model("resnet")
    assert "add intro_cnn/architectures/resnet.py with a build()" in str(info.value)


def test_the_registry_is_the_architecture_files(tmp_path, monkeypatch):
    """A network is a module of intro_cnn/architectures named as the model; helpers (_x.py) and
    files Python cannot import as a module are not networks."""
    for file in ("lenet.py", "_blocks.py", "res-net.py", "notes.txt", "vgg.py"):
        (tmp_path / file).write_text("")
    monkeypatch.setattr(architectures, "ARCHITECTURES", tmp_path)
    assert architectures.model_names() == ["lenet", "vgg"]


def test_a_build_that_returns_no_model_is_refused(tmp_path, monkeypatch):
    import sys
    import types

    (tmp_path / "broken.py").write_text("")
    monkeypatch.setattr(architectures, "ARCHITECTURES", tmp_path)
    module = types.ModuleType("intro_cnn.architectures.broken")
    module.build = lambda: "not a model"
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with pytest.raises(StageError, match=r"broken.build\(\) returned str, not a keras.Model"):
        models.build_model("broken")


def test_each_network_is_named_as_its_file():
    for name in architectures.model_names():
        assert models.build_model(name).name == name


def test_registry_matches_params():
    from intro_cnn.config import ROOT, load_params

    assert set(load_params(ROOT / "params.yaml").models) == set(architectures.model_names())


@needs_bfloat16_kernels
def test_mixed_bfloat16_computes_in_bf16_keeps_float32_weights_and_output():
    import keras

    model = models.build_model("cnn", "mixed_bfloat16")
    assert model.count_params() == 61_482
    conv = model.get_layer("conv1")
    assert conv.compute_dtype == "bfloat16"
    assert conv.kernel.dtype == "float32"
    assert model.get_layer("output").compute_dtype == "float32"
    out = model(keras.ops.zeros((2, 28, 28, 1)))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    # The policy applies to this build only, not to models built afterwards.
    assert keras.config.dtype_policy().name == "float32"
    assert models.build_model("cnn").get_layer("conv1").compute_dtype == "float32"


def test_unknown_precision_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"Unknown precision 'float16'.*float32"):
        models.build_model("cnn", "float16")


def _bn_step(model, x, fused: bool):
    """One training forward/backward pass: output, gradients, moving statistics."""
    import contextlib

    import tensorflow as tf

    with models.fused_batch_norm(model) if fused else contextlib.nullcontext():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(model(x, training=True)))
        grads = tape.gradient(loss, [x] + [w.value for w in model.trainable_weights])
    return [g.numpy() for g in grads] + [w.numpy() for w in model.non_trainable_weights]


@pytest.mark.parametrize(
    "precision", ["float32", pytest.param("mixed_bfloat16", marks=needs_bfloat16_kernels)]
)
def test_fused_batch_norm_is_keras_batch_norm(precision):
    """Same moving statistics and, in float32, the same weight gradients as Keras' own graph (to
    float32 rounding of sums over 128 x 26 x 26 values; bfloat16 gradients summed over as many
    values differ by their own rounding either way), inference untouched, layers standard."""
    import keras
    import ml_dtypes
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = models.build_model("cnn_small_bn", precision)
    x = tf.random.uniform((128, 28, 28, 1))
    before = [w.numpy() for w in model.weights]
    keras_graph = _bn_step(model, x, fused=False)
    for w, value in zip(model.weights, before, strict=True):
        w.assign(value)
    fused = _bn_step(model, x, fused=True)
    # Weight gradients and moving statistics (the input's gradient feeds nothing in training).
    compared = slice(1, None) if precision == "float32" else slice(-4, None)
    for a, b in zip(keras_graph[compared], fused[compared], strict=True):
        np.testing.assert_allclose(b, a, rtol=2e-3, atol=2e-3 * np.abs(a).max())
    moving = model.get_layer("bn1").moving_variance.numpy()
    assert not np.allclose(moving, 1.0)  # the moving statistics did move
    assert all("call" not in vars(layer) for layer in model.layers)  # restored on exit
    # Inference is untouched: the same shapes in one process give the same values exactly; at
    # other batch shapes oneDNN picks other kernels (on AVX2 they differ in the last bit), so
    # there a few roundings of the compute dtype, on outputs no larger than 1, are allowed.
    direct = model(x, training=False)
    np.testing.assert_array_equal(direct, model.predict(x, batch_size=len(x), verbose=0))
    eps = float(ml_dtypes.finfo(model.get_layer("conv1").compute_dtype).eps)
    np.testing.assert_allclose(direct, model.predict(x, verbose=0), rtol=0, atol=4 * eps)


def test_fused_batch_norm_switches_only_batch_norm_layers():
    with models.fused_batch_norm(models.build_model("cnn_small_bn")) as switched:
        assert switched == 2
    with models.fused_batch_norm(models.build_model("cnn")) as switched:
        assert switched == 0
