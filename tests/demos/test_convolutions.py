"""The convolution demos: the numbers (against independent computations), figures, and the stage."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from matplotlib.text import Text
from PIL import Image

from intro_cnn import config
from intro_cnn.demos import convolutions
from intro_cnn.demos.convolutions import (
    blur_color,
    edge_map,
    gaussian_1d,
    gaussian_2d,
    gradient_filter,
    random_walk,
    smooth,
    to_grey,
)
from intro_cnn.reporting import plotting
from stages import convolutions as convolutions_stage

CFG = config.ConvolutionsConfig(walk_seed=2, walk_steps=200, gauss_taps=15, gauss_halfwidth=2.0)


@pytest.fixture(scope="module")
def g() -> np.ndarray:
    return gaussian_1d(CFG.gauss_taps, CFG.gauss_halfwidth)


@pytest.fixture(scope="module")
def g2d(g) -> np.ndarray:
    return gaussian_2d(g)


def _reflect_index(i: int, n: int) -> int:
    """scipy.ndimage's mode='reflect': half-sample symmetric, d c b a | a b c d | d c b a."""
    while not 0 <= i < n:
        i = -i - 1 if i < 0 else 2 * n - 1 - i
    return i


def _small_image(h: int = 24, w: int = 32) -> np.ndarray:
    rng = np.random.RandomState(0)
    return rng.randint(0, 256, size=(h, w, 3)).astype(np.uint8)


# --------------------------------------------------------------------------------------
# 1-D
# --------------------------------------------------------------------------------------
def test_random_walk_is_the_notebooks_stream():
    walk = random_walk(2, 200)
    assert walk.shape == (200,)
    np.testing.assert_array_equal(walk[:3], np.random.RandomState(2).randn(3).cumsum())
    np.testing.assert_array_equal(walk, random_walk(2, 200))
    assert walk[0] == pytest.approx(-0.416757847405, rel=1e-10)
    with pytest.raises(ValueError, match="walk_steps"):
        random_walk(2, 0)


def test_gaussian_1d_is_normalised_symmetric_and_peaked(g):
    assert g.shape == (15,)
    assert g.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(g, g[::-1], rtol=0, atol=1e-16)
    assert np.argmax(g) == 7
    # Ends at x = +-2 against the centre at x = 0: exp(-4).
    assert g[0] / g[7] == pytest.approx(np.exp(-4.0), rel=1e-12)
    with pytest.raises(ValueError, match="gauss_taps"):
        gaussian_1d(0, 2.0)
    with pytest.raises(ValueError, match=r"gauss_taps must be odd .* use 15 or 17"):
        gaussian_1d(16, 2.0)
    with pytest.raises(ValueError, match="gauss_halfwidth"):
        gaussian_1d(15, 0.0)


@pytest.mark.parametrize("taps", [1, 3, 5, 15, 17, 101])
def test_odd_gaussians_peak_on_their_centre_tap(taps):
    # scipy.ndimage centres a kernel on tap taps // 2: the peak must be there, and symmetric.
    g = gaussian_1d(taps, 2.0)
    assert np.argmax(g) == taps // 2
    np.testing.assert_allclose(g, g[::-1], rtol=0, atol=1e-16)
    g2d = gaussian_2d(g)
    assert np.unravel_index(np.argmax(g2d), g2d.shape) == (taps // 2, taps // 2)


def test_even_taps_are_refused_by_the_schema():
    with pytest.raises(ValueError, match="must be odd"):
        config.ConvolutionsConfig(walk_seed=2, walk_steps=200, gauss_taps=16, gauss_halfwidth=2.0)


def test_gaussian_2d_is_the_outer_product_and_sums_to_one(g, g2d):
    assert g2d.shape == (15, 15)
    assert g2d.sum() == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_array_equal(g2d, np.outer(g, g))
    np.testing.assert_allclose(g2d, g2d.T, rtol=0, atol=1e-18)


def test_smoothing_keeps_a_constant_signal(g):
    signal = np.full(50, 3.25)
    out = smooth(signal, g)
    np.testing.assert_allclose(out, 3.25, rtol=0, atol=1e-13)
    assert out.mean() == pytest.approx(signal.mean(), abs=1e-13)


def test_smoothed_walk_equals_an_explicit_reflect_padded_sum(g):
    walk = random_walk(2, 200)
    out = smooth(walk, g)
    n, c = walk.size, g.size // 2
    assert out.shape == walk.shape
    # Convolution by hand: out[i] = sum_k g[k] * x[i + c - k], indices reflected at the ends.
    for i in (0, 1, 6, 7, 100, 192, 198, 199):
        expected = sum(g[k] * walk[_reflect_index(i + c - k, n)] for k in range(g.size))
        assert out[i] == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # And all of it via numpy's 'symmetric' padding (the same half-sample reflection).
    padded = np.pad(walk, c, mode="symmetric")
    np.testing.assert_allclose(out, np.convolve(padded, g, mode="valid"), rtol=0, atol=1e-12)
    # Pinned notebook values (RandomState(2), 15 taps on [-2, 2]).
    assert out[0] == pytest.approx(-1.21268639002, rel=1e-9)
    assert out[-1] == pytest.approx(2.03225960451, rel=1e-9)


def test_smoothing_reduces_roughness(g):
    walk = random_walk(2, 200)
    assert np.abs(np.diff(smooth(walk, g))).mean() < 0.5 * np.abs(np.diff(walk)).mean()


# --------------------------------------------------------------------------------------
# 2-D
# --------------------------------------------------------------------------------------
def test_gradient_filter_is_a_forward_difference_summing_to_zero(g2d):
    grad = gradient_filter(g2d)
    assert grad.shape == g2d.shape
    assert abs(grad.sum()) < 1e-12
    # convolve(x, [[-1, 1]]) with reflect padding is x[:, j] - x[:, j + 1]; the last column
    # meets its own reflection, so it is exactly 0.
    np.testing.assert_array_equal(grad[:, :-1], g2d[:, :-1] - g2d[:, 1:])
    np.testing.assert_array_equal(grad[:, -1], 0.0)
    # Antisymmetric left-right about the centre of the first 14 columns (j <-> 13 - j), not
    # about the middle column: grad[:, ::-1] == -grad would be false.
    core = grad[:, :-1]
    np.testing.assert_allclose(core[:, ::-1], -core, rtol=0, atol=1e-15)
    assert np.abs(grad[:, ::-1] + grad).max() > 1e-3
    # Symmetric top-bottom; negative where the Gaussian rises (left), positive where it falls.
    np.testing.assert_allclose(grad, grad[::-1], rtol=0, atol=1e-15)
    assert (grad[:, :7] < 0).all()
    assert (grad[:, 7:14] > 0).all()


def test_edge_response_peaks_at_a_vertical_step(g, g2d):
    step = 20
    grey = np.zeros((40, 48))
    grey[:, step:] = 100.0
    edges = edge_map(grey, gradient_filter(g2d))
    assert edges.shape == grey.shape
    # A vertical edge gives the same response on every row.
    np.testing.assert_allclose(edges, np.broadcast_to(edges[0], edges.shape), rtol=0, atol=1e-12)
    profile = edges[20]
    # The forward difference lands on the last dark column; dark-to-bright is negative.
    peak = step - 1
    assert np.argmax(np.abs(profile)) == peak
    assert profile[peak] < -10
    # Symmetric around the peak, and ~0 beyond the filter's half-width (7 columns).
    for d in range(1, 8):
        assert profile[peak - d] == pytest.approx(profile[peak + d], abs=1e-12)
    far = np.r_[0 : peak - 7, peak + 8 : grey.shape[1]]
    assert np.abs(profile[far]).max() < 1e-12
    # Rows of the filter sum to g[k] - g[k + 1]; the terms that see the bright side telescope
    # to g[0] - g[7]: the step height times (end - centre) of the 1-D Gaussian.
    assert profile[peak] == pytest.approx(-100.0 * (g[7] - g[0]), rel=1e-12)


def test_blur_color_is_float_bounded_and_does_not_overflow(g2d):
    white = np.full((20, 30, 3), 255, dtype=np.uint8)
    out = blur_color(white, g2d)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, 255.0, rtol=0, atol=1e-9)

    img = _small_image()
    out = blur_color(img, g2d)
    assert out.shape == img.shape and out.dtype == np.float64
    assert out.min() >= img.min() - 1e-9 and out.max() <= img.max() + 1e-9
    assert out.std() < img.astype(float).std()  # blurred: less contrast
    # Channels never mix: each equals a 2-D convolution of that channel alone.
    red_only = np.zeros_like(img)
    red_only[..., 0] = img[..., 0]
    mixed = blur_color(red_only, g2d)
    np.testing.assert_array_equal(mixed[..., 1:], 0.0)
    np.testing.assert_allclose(mixed[..., 0], out[..., 0], rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="channels"):
        blur_color(img[..., 0], g2d)


def test_to_grey_is_a_float_channel_mean():
    img = np.array([[[255, 255, 254], [0, 3, 0]]], dtype=np.uint8)
    grey = to_grey(img)
    assert grey.dtype == np.float64
    np.testing.assert_allclose(grey, [[764 / 3, 1.0]], rtol=1e-15)


def test_compute_all_and_summary(g, g2d):
    img = _small_image()
    arrays = convolutions.compute_all(CFG, img)
    np.testing.assert_array_equal(arrays["g"], g)
    np.testing.assert_array_equal(arrays["g2d"], g2d)
    assert arrays["smoothed"].shape == (200,)
    assert arrays["blurred"].shape == img.shape
    assert arrays["grey"].shape == arrays["edges"].shape == img.shape[:2]
    summary = convolutions.summarize(arrays)
    assert summary["gaussian_1d"]["sum"] == 1.0
    assert summary["gaussian_2d"]["sum"] == 1.0
    assert summary["gradient"]["sum"] == 0.0
    assert summary["image"]["shape"] == [24, 32, 3]
    assert summary["random_walk"]["first"][0] == pytest.approx(-0.416757847405, rel=1e-11)
    json.dumps(summary)  # plain JSON types only


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------
EXPECTED_TITLES = {
    "01_random_walk": "random_walk_title",
    "02_gaussian_1d": "gaussian_1d_title",
    "03_image": "image_title",
    "04_gaussian_2d": "gaussian_2d_title",
    "05_blurred": "blurred_title",
    "06_grey": "grey_title",
    "07_gradient_filter": "gradient_title",
    "08_edges": "edges_title",
}
EXPECTED_AXES = {"01_random_walk": ("step", "value"), "02_gaussian_1d": ("tap", "weight")}


@pytest.mark.parametrize("lang", ["es", "en"])
def test_figures_have_titles_and_labels_in_the_report_language(lang):
    arrays = convolutions.compute_all(CFG, _small_image())
    figures = convolutions.make_figures(arrays, lang)
    assert list(figures) == list(EXPECTED_TITLES)
    for name, fig in figures.items():
        ax = fig.axes[0]
        assert ax.get_title() == plotting.label(EXPECTED_TITLES[name], lang, taps=15), name
        x_key, y_key = EXPECTED_AXES.get(name, ("column", "row"))
        assert ax.get_xlabel() == plotting.label(x_key, lang), name
        assert ax.get_ylabel() == plotting.label(y_key, lang), name
        # Readable when printed: no visible text under 10 pt.
        fig.draw_without_rendering()
        sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_text() and t.get_visible()]
        assert sizes and min(sizes) >= 10, name
    legend = [t.get_text() for t in figures["01_random_walk"].axes[0].get_legend().get_texts()]
    assert legend == [plotting.label("random_walk", lang), plotting.label("smoothed", lang)]
    # The gradient filter's colour map is diverging and centred on 0.
    im = figures["07_gradient_filter"].axes[0].get_images()[0]
    assert im.get_cmap().name == "RdBu_r"
    vmin, vmax = im.get_clim()
    assert vmin == -vmax and vmax > 0


# --------------------------------------------------------------------------------------
# Stage
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_load_image_gives_rgb_uint8(tmp_path, mode):
    path = tmp_path / "image.png"
    Image.new(mode, (7, 5)).save(path)
    img = convolutions.load_image(path)
    assert img.shape == (5, 7, 3) and img.dtype == np.uint8


def _stage_dir(tmp_path, monkeypatch, lang="en", dpi=40):
    raw = yaml.safe_load((config.ROOT / config.PARAMS_FILE).read_text(encoding="utf-8"))
    raw["report"].update(lang=lang, dpi=dpi)
    (tmp_path / config.PARAMS_FILE).write_text(yaml.safe_dump(raw), encoding="utf-8")
    monkeypatch.chdir(tmp_path)


def test_main_writes_all_figures_and_summary(tmp_path, monkeypatch):
    _stage_dir(tmp_path, monkeypatch)
    image_dir = tmp_path / config.RAW_IMAGE_DIR
    image_dir.mkdir(parents=True)
    Image.fromarray(_small_image(30, 40)).save(image_dir / "image.png")

    convolutions_stage.main()

    out = tmp_path / config.CONV_DIR
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [f"{name}.png" for name in EXPECTED_TITLES]
    # no temp files
    assert sorted(p.name for p in out.iterdir()) == [*pngs, "playground.json", "summary.json"]
    for name in pngs:
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] > 100
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["image"]["path"] == "data/raw/image/image.png"
    assert summary["image"]["shape"] == [30, 40, 3]
    assert summary["gaussian_1d"] == {
        "taps": 15,
        "sum": 1.0,
        "center": pytest.approx(float(gaussian_1d(15, 2.0)[7]), rel=1e-11),
        "end": pytest.approx(float(gaussian_1d(15, 2.0)[0]), rel=1e-11),
    }
    assert summary["gradient"]["sum"] == 0.0

    # Rerunning gives byte-identical outputs (DVC sees no change).
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    convolutions_stage.main()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_main_without_image_fails_cleanly(tmp_path, monkeypatch, caplog):
    _stage_dir(tmp_path, monkeypatch)
    with pytest.raises(SystemExit) as exc:
        convolutions_stage.main()
    assert exc.value.code == 1
    assert "dvc repro download" in caplog.text
    assert not (tmp_path / config.CONV_DIR).exists()


def test_main_with_corrupt_image_fails_cleanly(tmp_path, monkeypatch, caplog):
    _stage_dir(tmp_path, monkeypatch)
    image_dir = tmp_path / config.RAW_IMAGE_DIR
    image_dir.mkdir(parents=True)
    shutil.copyfile(config.ROOT / "pyproject.toml", image_dir / "image.jpg")
    with pytest.raises(SystemExit) as exc:
        convolutions_stage.main()
    assert exc.value.code == 1
    assert "image.jpg" in caplog.text
    assert not (tmp_path / config.CONV_DIR).exists()


def test_check_image_size_needs_twice_the_kernel_on_each_side():
    assert convolutions.min_image_side(15) == 30
    convolutions.check_image_size("image.png", _small_image(30, 30), 15)
    convolutions.check_image_size("image.png", _small_image(10, 10), 5)
    for h, w in [(1, 1), (5, 5), (29, 30), (30, 29), (600, 29)]:
        with pytest.raises(
            ValueError, match=rf"image.png is {w}x{h} pixels, smaller than the 30x30"
        ):
            convolutions.check_image_size("image.png", _small_image(h, w), 15)


def test_main_refuses_a_1x1_image_and_keeps_the_previous_figures(tmp_path, monkeypatch, caplog):
    _stage_dir(tmp_path, monkeypatch)
    image_dir = tmp_path / config.RAW_IMAGE_DIR
    image_dir.mkdir(parents=True)
    Image.new("RGB", (1, 1), (200, 100, 50)).save(image_dir / "image.png")
    out = tmp_path / config.CONV_DIR
    out.mkdir(parents=True)
    (out / "summary.json").write_text("previous", encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        convolutions_stage.main()
    assert exc.value.code == 1
    assert "data/raw/image/image.png is 1x1 pixels, smaller than the 30x30" in caplog.text
    assert [p.name for p in out.iterdir()] == ["summary.json"]
    assert (out / "summary.json").read_text(encoding="utf-8") == "previous"
