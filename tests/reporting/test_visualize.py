"""Tests of the visualize stage: feature maps computed by hand, every figure's layout and labels
in both languages (intro_cnn/reporting/*_figures.py), and the stage end to end on tiny
trained models with MLflow."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.text import Text
from PIL import Image

from intro_cnn import config
from intro_cnn.config import ROOT
from intro_cnn.reporting import curve_figures as cf
from intro_cnn.reporting import evaluation_figures as ef
from intro_cnn.reporting import filter_figures as ff
from intro_cnn.reporting import network_figures as nf
from intro_cnn.reporting import plotting
from intro_cnn.reporting import visualize as vis
from intro_cnn.reporting.errors import VisualizeError
from intro_cnn.runtime.errors import StageError
from intro_cnn.runtime.files import read_json
from stages import visualize
from tests.conftest import MODELS as ALL_MODELS
from tests.conftest import build_project, needs_bfloat16_kernels


@pytest.fixture(scope="module")
def images(subset) -> tuple[np.ndarray, np.ndarray]:
    """The first 5 training images of the subset, preprocessed as the pipeline does."""
    x = (subset["x_train"][:5].astype(np.float32) / 255.0)[..., None]
    return x, subset["y_train"][:5]


@pytest.fixture(scope="module")
def cnn_small():
    import keras

    from intro_cnn.models import build_model

    keras.utils.set_random_seed(3)
    return build_model("cnn_small")


def history(epochs: int, offset: float = 0.0) -> dict[str, np.ndarray]:
    e = np.arange(1, epochs + 1, dtype=float)
    return {
        "epoch": e,
        "accuracy": 0.995 - 0.1 / e - offset,
        "val_accuracy": 0.99 - 0.09 / e - offset,
        "loss": 0.3 / e,
        "val_loss": 0.25 / e + 0.02,
    }


def results(names: Sequence[str] = ALL_MODELS, n_wrong: int = 6) -> dict[str, nf.ModelResults]:
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 6, (10, 10))
    np.fill_diagonal(cm, 950)
    wrong = [
        {"index": i, "true": i % 10, "predicted": (i + 3) % 10, "probability": 0.99 - i / 100}
        for i in range(n_wrong)
    ]
    sizes = {"cnn": 61482, "cnn_small": 14178, "cnn_small_bn": 14242, "mlp": 669706}
    return {
        name: nf.ModelResults(
            history=history(3 + k, 0.001 * k),
            confusion=cm,
            wrong=wrong,
            wrong_images=rng.random((n_wrong, 28, 28)),
            test_accuracy=0.98 + 0.002 * k,
            params=sizes.get(name, 1000 * (k + 1)),
        )
        for k, name in enumerate(names)
    }


def all_texts(fig) -> list[Text]:
    fig.draw_without_rendering()
    return [t for t in fig.findobj(Text) if t.get_text() and t.get_visible()]


def assert_readable(fig) -> None:
    """Readable when printed: no visible text under 10 pt."""
    sizes = [t.get_fontsize() for t in all_texts(fig)]
    assert sizes and min(sizes) >= 10


def image_axes(fig) -> list:
    return [ax for ax in fig.axes if ax.get_images()]


# --------------------------------------------------------------------------------------
# Feature maps and filters, checked against a hand-written convolution
# --------------------------------------------------------------------------------------
def _conv_relu(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Valid cross-correlation (what Conv2D computes), then ReLU: (N, H, W, C) -> (N, H-2, ...)."""
    windows = np.lib.stride_tricks.sliding_window_view(x, kernel.shape[:2], axis=(1, 2))
    return np.maximum(np.einsum("nyxcab,abcj->nyxj", windows, kernel) + bias, 0.0)


def test_feature_maps_match_a_hand_computed_convolution(cnn_small, images):
    x, _ = images
    maps1, maps2 = vis.feature_maps(cnn_small, x)
    assert maps1.shape == (5, 26, 26, 8)
    assert maps2.shape == (5, 11, 11, 8)

    conv1, conv2 = cnn_small.get_layer("conv1"), cnn_small.get_layer("conv2")
    k1, b1 = (np.asarray(w, dtype=np.float64) for w in conv1.get_weights())
    k2, b2 = (np.asarray(w, dtype=np.float64) for w in conv2.get_weights())
    expected1 = _conv_relu(x.astype(np.float64), k1, b1)
    np.testing.assert_allclose(maps1, expected1, atol=1e-5)
    pooled = expected1.reshape(5, 13, 2, 13, 2, 8).max(axis=(2, 4))
    np.testing.assert_allclose(maps2, _conv_relu(pooled, k2, b2), atol=1e-5)
    assert maps1.max() > 0 and maps2.max() > 0  # not all switched off by the ReLU


@needs_bfloat16_kernels
def test_feature_maps_of_a_bfloat16_model_are_float32_and_close(cnn_small, images):
    """A mixed_bfloat16 model (train.precision) gives plottable float32 maps, near float32's."""
    from intro_cnn.models import build_model

    x, _ = images
    bf16 = build_model("cnn_small", "mixed_bfloat16")
    bf16.set_weights(cnn_small.get_weights())
    maps1, maps2 = vis.feature_maps(bf16, x)
    ref1, ref2 = vis.feature_maps(cnn_small, x)
    assert maps1.dtype == np.float32 and maps2.dtype == np.float32
    # bfloat16 keeps 8 bits of mantissa: agreement to a few percent of the largest activation.
    np.testing.assert_allclose(maps1, ref1, atol=0.03 * np.abs(ref1).max())
    np.testing.assert_allclose(maps2, ref2, atol=0.05 * np.abs(ref2).max())
    assert all(k.dtype == np.float32 for k in vis.conv_kernels(bf16))


def test_feature_maps_need_two_convolutions():
    from intro_cnn.models import build_model

    with pytest.raises(VisualizeError, match="Conv2D"):
        vis.feature_maps(build_model("mlp"), np.zeros((1, 28, 28, 1), np.float32))


@pytest.mark.parametrize("lang", ["es", "en"])
def test_filter_grid_layout(cnn_small, lang):
    kernels = vis.conv_kernels(cnn_small)
    assert [k.shape for k in kernels] == [(3, 3, 1, 8), (3, 3, 8, 8)]
    fig = ff.fig_filters(kernels, "cnn_small", lang)
    axes = image_axes(fig)
    assert len(axes) == 9 * 8
    colorbars = [ax for ax in fig.axes if ax not in axes]
    assert len(colorbars) == 2
    assert {cb.get_ylabel() for cb in colorbars} == {plotting.label("weight", lang)}
    # Row 1: first-layer filter j; row 1 + i: second-layer weights of input channel i, filter j.
    for j in range(8):
        np.testing.assert_array_equal(axes[j].get_images()[0].get_array(), kernels[0][:, :, 0, j])
        assert axes[j].get_title() == plotting.label("filter_n", lang, n=j + 1)
    for i in range(8):
        for j in range(8):
            im = axes[8 + 8 * i + j].get_images()[0]
            np.testing.assert_array_equal(im.get_array(), kernels[1][:, :, i, j])
    # One symmetric colour scale per layer.
    clim1 = {ax.get_images()[0].get_clim() for ax in axes[:8]}
    clim2 = {ax.get_images()[0].get_clim() for ax in axes[8:]}
    assert len(clim1) == len(clim2) == 1
    (lo1, hi1), (lo2, hi2) = clim1.pop(), clim2.pop()
    assert lo1 == -hi1 == -np.abs(kernels[0]).max()
    assert lo2 == -hi2 == -np.abs(kernels[1]).max()
    assert axes[0].get_ylabel() == plotting.label("layer_n", lang, n=1)
    assert axes[8].get_ylabel() == plotting.label("layer_channel", lang, layer=2, channel=1)
    assert fig.get_suptitle() == plotting.label("filters_title", lang, model="cnn_small")
    assert_readable(fig)


@pytest.mark.parametrize("lang", ["es", "en"])
def test_feature_map_figure_layout(cnn_small, images, lang):
    x, y = images
    maps1, maps2 = vis.feature_maps(cnn_small, x)
    fig = ff.fig_feature_maps(x, y, maps1, maps2, "cnn_small", lang)
    axes = image_axes(fig)
    assert len(axes) == 5 * (1 + 8 + 8)
    digits = [ax for ax in axes if ax.get_images()[0].get_array().shape == (28, 28)]
    assert [ax.get_title() for ax in digits] == [
        plotting.label("digit", lang, label=int(v)) for v in y
    ]
    shapes = [ax.get_images()[0].get_array().shape for ax in axes]
    assert shapes.count((26, 26)) == shapes.count((11, 11)) == 40
    assert fig.get_suptitle() == plotting.label("feature_maps_title", lang, model="cnn_small")
    assert_readable(fig)


# --------------------------------------------------------------------------------------
# Curves, matrices, galleries
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", ["es", "en"])
def test_history_figure_is_the_notebooks_plot_history(lang):
    h = history(5)
    fig = cf.fig_history(h, "cnn", lang)
    ax, twin = fig.axes
    assert ax.get_title() == plotting.label("history_title", lang, model="cnn")
    assert ax.get_xlabel() == plotting.label("epoch", lang)
    assert ax.get_ylabel() == plotting.label("accuracy", lang)
    assert twin.get_ylabel() == plotting.label("loss", lang)
    assert twin.get_shared_x_axes().joined(ax, twin)
    # Accuracies solid on the left axis, losses dashed on the twin.
    assert [line.get_linestyle() for line in ax.get_lines()] == ["-", "-"]
    assert [line.get_linestyle() for line in twin.get_lines()] == ["--", "--"]
    np.testing.assert_array_equal(ax.get_lines()[1].get_ydata(), h["val_accuracy"])
    np.testing.assert_array_equal(twin.get_lines()[0].get_ydata(), h["loss"])
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        plotting.label(k, lang) for k in ("accuracy", "val_accuracy", "loss", "val_loss")
    ]
    assert_readable(fig)


def test_spanish_labels_are_the_notebooks():
    fig = cf.fig_history(history(3), "cnn", "es")
    assert fig.axes[0].get_ylabel() == "precisión"
    assert fig.axes[1].get_ylabel() == "pérdida"
    assert fig.axes[0].get_xlabel() == "época"
    assert cf.fig_history(history(3), "cnn", "en").axes[0].get_ylabel() == "accuracy"


@pytest.mark.parametrize("lang", ["es", "en"])
def test_zoom_and_bn_comparison(lang):
    fig = cf.fig_accuracy_zoom(history(4), "cnn", lang)
    (ax,) = fig.axes
    assert ax.get_ylim() == (0.9, 1.0)
    assert ax.get_title() == plotting.label("history_zoom_title", lang, model="cnn")
    assert len(ax.get_lines()) == 2
    assert_readable(fig)

    plain, bn = history(4), history(4, offset=-0.003)
    fig = cf.fig_bn_comparison(plain, bn, ("cnn_small", "cnn_small_bn"), lang)
    (ax,) = fig.axes
    assert len(ax.get_lines()) == 4
    np.testing.assert_array_equal(ax.get_lines()[3].get_ydata(), bn["val_accuracy"])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0] == plotting.label(
        "curve", lang, model="cnn_small", split=plotting.label("train", lang)
    )
    assert labels[3] == plotting.label(
        "curve", lang, model="cnn_small_bn", split=plotting.label("val", lang)
    )
    assert ax.get_title() == plotting.label("bn_title", lang, plain="cnn_small", bn="cnn_small_bn")
    assert_readable(fig)


@pytest.mark.parametrize("lang", ["es", "en"])
def test_confusion_figure_annotates_every_count(lang):
    cm = np.arange(100).reshape(10, 10)
    fig = ef.fig_confusion(cm, "mlp", lang)
    ax = fig.axes[0]
    assert ax.get_title() == plotting.label("confusion_title", lang, model="mlp")
    assert ax.get_xlabel() == plotting.label("predicted_label", lang)
    assert ax.get_ylabel() == plotting.label("true_label", lang)
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    assert len(cells) == 100
    # Row = true label: the text at (row 3, column 7) is cm[3, 7].
    assert cells[(3, 7)].get_text() == "37"
    assert fig.axes[1].get_ylabel() == plotting.label("images", lang)  # the colour bar
    assert_readable(fig)


@pytest.mark.parametrize("lang", ["es", "en"])
def test_wrong_gallery(lang):
    r = results(("cnn",), n_wrong=6)["cnn"]
    fig = ef.fig_wrong(r.wrong, r.wrong_images, "cnn", lang)
    axes = image_axes(fig)
    assert len(axes) == 6
    first = r.wrong[0]
    assert axes[0].get_title() == plotting.label(
        "wrong_item", lang, true=first["true"], pred=first["predicted"], prob="p = 0.990"
    )
    np.testing.assert_array_equal(axes[5].get_images()[0].get_array(), r.wrong_images[5])
    assert fig.get_suptitle() == plotting.label("wrong_title", lang, model="cnn")
    assert_readable(fig)

    empty = ef.fig_wrong([], np.zeros((0, 28, 28)), "cnn", lang)
    assert plotting.label("no_wrong", lang) in [t.get_text() for t in all_texts(empty)]


def test_format_prob_never_rounds_up_to_certainty():
    assert ef.format_prob(0.98765) == "p = 0.988"
    assert ef.format_prob(0.99996) == "p > 0.999"
    assert ef.format_prob(0.9994) == "p = 0.999"
    assert ef.format_prob(1.0) == "p > 0.999"  # float32 softmax rounds p > 1 - 6e-8 to 1


@pytest.mark.parametrize("lang", ["es", "en"])
def test_accuracy_vs_params(lang):
    points = {"cnn": (61482, 0.99), "cnn_small": (14178, 0.985), "cnn_small_bn": (14242, 0.987)}
    fig = ef.fig_accuracy_vs_params(points, lang)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == plotting.label("params_axis", lang)
    assert ax.get_ylabel() == plotting.label("test_accuracy", lang)
    assert ax.get_title() == plotting.label("params_title", lang)
    names = {t.get_text(): t for t in ax.texts}
    assert set(names) == set(points)
    assert names["cnn_small"].xy == (14178, 0.985)
    # The two nearly equal sizes are labelled on opposite sides.
    assert {names["cnn_small"].get_ha(), names["cnn_small_bn"].get_ha()} == {"left", "right"}
    assert_readable(fig)


def test_make_figures_skips_what_needs_an_absent_model(cnn_small, images):
    x, y = images
    conv = nf.ConvDetails(vis.conv_kernels(cnn_small), x, y, *vis.feature_maps(cnn_small, x))
    full = [e for e, _ in nf.make_figures(results(), conv, "en")]
    assert [e.kind for e in full] == (
        ["history"] * 4
        + ["history_zoom", "filters", "feature_maps", "bn_comparison"]
        + ["confusion"] * 4
        + ["wrong"] * 4
        + ["accuracy_vs_params"]
    )
    assert len({e.file for e in full}) == len(full)
    assert full[-1].models == ALL_MODELS

    some = [e for e, _ in nf.make_figures(results(("mlp", "cnn_small_bn")), None, "en")]
    assert [e.name for e in some] == [
        "history_mlp",
        "history_cnn_small_bn",
        "confusion_mlp",
        "confusion_cnn_small_bn",
        "wrong_mlp",
        "wrong_cnn_small_bn",
        "accuracy_vs_params",
    ]
    index = nf.index_json(some, "en")
    assert index["figures"][0] == {"file": "history_mlp.png", "kind": "history", "models": ["mlp"]}


@pytest.mark.parametrize("lang", ["es", "en"])
def test_every_seed_is_a_point_under_its_mean_and_interval(lang):
    from dataclasses import replace

    seeded = results(("cnn", "cnn_small", "cnn_small_bn"))
    seeded["cnn_small"] = replace(
        seeded["cnn_small"],
        seed_accuracies={1: 0.986, 2: 0.987, 3: 0.985},
        interval=(0.9835, 0.9885),
    )
    seeded["cnn"] = replace(seeded["cnn"], seed_accuracies={1: 0.991})
    figures = dict((e.kind, (e, f)) for e, f in nf.make_figures(seeded, None, lang))
    entry, fig = figures["accuracy_by_seed"]
    assert entry.models == ("cnn", "cnn_small")  # cnn_small_bn has no seeds entry
    ax = fig.axes[0]
    points = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert sorted(len(line.get_ydata()) for line in points) == [1, 3]
    assert sorted(y for line in points for y in line.get_ydata()) == [0.985, 0.986, 0.987, 0.991]
    intervals = [c for c in ax.collections if c.get_segments() and len(c.get_segments()[0]) == 2]
    spans = sorted(tuple(seg[:, 1]) for c in intervals for seg in c.get_segments())
    assert (0.9835, 0.9885) in spans  # the one interval, cnn's single run has none
    assert ax.get_title() == plotting.label("seeds_title", lang)
    assert_readable(fig)


# --------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------
def test_main_without_evaluate_outputs_fails_cleanly(tmp_path, monkeypatch, caplog):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        visualize.main()
    assert exc.value.code == 1
    assert f"{config.COMPARE_METRICS} not found: run `dvc repro compare` first" in caplog.text
    assert not (tmp_path / config.NETWORK_DIR).exists()


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch, new_store) -> str:
    uri = new_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


@pytest.mark.slow
def test_main_end_to_end(mlflow_uri, tmp_path, subset, caplog):
    from mlflow import MlflowClient

    run_ids = build_project(tmp_path, subset, lang="en")
    client = MlflowClient(mlflow_uri)

    visualize.main()

    out = tmp_path / config.NETWORK_DIR
    index = read_json(out / config.FIGURES_INDEX)
    assert index["lang"] == "en"
    listed = [f["file"] for f in index["figures"]]
    assert len(listed) == 18  # accuracy_by_seed included: one seed each here
    assert sorted(p.name for p in out.iterdir()) == sorted([*listed, config.FIGURES_INDEX])
    for name in listed:
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] >= 200
    # The feature maps are of the first training images.
    with Image.open(out / "feature_maps_cnn_small.png") as im:
        assert im.size[1] > im.size[0] * 0.9  # 5 image groups stacked: a tall figure

    # Figures went into this execution's parent run, none into the training runs (they were
    # made by an earlier execution here), which the parent links to.
    from intro_cnn import tracking

    (parent,) = client.search_runs(
        [client.get_experiment_by_name("intro-cnn").experiment_id],
        filter_string=f"tags.`{tracking.ROLE_TAG}` = 'execution'",
    )
    logged = {Path(a.path).name for a in client.list_artifacts(parent.info.run_id, vis.MLFLOW_DIR)}
    assert logged == set(listed)
    for name, run_id in run_ids.items():
        assert not client.list_artifacts(run_id), name
        assert parent.data.tags[tracking.REUSED_TAG_PREFIX + name] == run_id
    # The evaluation ran in this same execution (this process): nothing to link.
    assert tracking.REUSED_TAG_PREFIX + vis.EVALUATE_LINK not in parent.data.tags

    # Same inputs, same bytes: DVC sees no change on a rerun.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    visualize.main()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    # A model dropped from params: its figures disappear, the cross-model ones shrink.
    raw = yaml.safe_load(Path("params.yaml").read_text())
    del raw["models"]["cnn_small"]
    Path("params.yaml").write_text(yaml.safe_dump(raw))
    visualize.main()
    names = {p.name for p in out.iterdir()}
    assert not any("cnn_small." in n or n.endswith("_cnn_small.png") for n in names)
    assert "bn_comparison.png" not in names and "history_cnn_small_bn.png" in names


def test_read_history_rejects_a_bad_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = config.history_path("cnn")
    path.parent.mkdir(parents=True)
    buf = io.StringIO()
    csv.writer(buf).writerows([["epoch", "accuracy", "loss"], [1, 0.5, 1.0]])
    path.write_text(buf.getvalue())
    with pytest.raises(
        StageError, match=f"{path}: missing column.*val_accuracy.*run `dvc repro train@cnn`"
    ):
        vis.history_arrays("cnn")
