"""Stage ``convolutions``: the notebook's convolution demos, as figures and a small summary.

1-D: a random walk smoothed by a normalised Gaussian filter. 2-D: the same Gaussian as an
outer product blurs a colour image channel by channel; its horizontal difference is an edge
(Sobel-like) filter, applied to the greyscale image. All convolutions are
:func:`scipy.ndimage.convolve` with its default ``mode="reflect"`` (half-sample symmetric
padding: ``d c b a | a b c d | d c b a``), as in the notebook.

Inputs: the downloaded image and the ``convolutions`` and ``report`` params only, so no model
change ever reruns this stage. Outputs: ``reports/figures/convolutions/NN_name.png`` and
``summary.json`` beside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from intro_cnn import config
from intro_cnn.reporting import plotting
from intro_cnn.reporting.plotting import label
from intro_cnn.runtime import errors, files

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def convolve(values: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """:func:`scipy.ndimage.convolve` (imported on first use: the stage checks params first)."""
    from scipy.ndimage import convolve as scipy_convolve

    return scipy_convolve(values, kernel)


# --------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------
def random_walk(seed: int, steps: int) -> np.ndarray:
    """Cumulative sum of ``steps`` standard normal draws from ``RandomState(seed)``.

    The legacy ``RandomState`` stream is what the notebook's ``np.random.seed(2)`` gives.
    """
    if steps < 1:
        raise ValueError(f"convolutions.walk_steps must be at least 1, got {steps}.")
    return np.random.RandomState(seed).randn(steps).cumsum()


def gaussian_1d(taps: int, halfwidth: float) -> np.ndarray:
    """``exp(-x**2)`` sampled at ``taps`` points on ``[-halfwidth, halfwidth]``, summing to 1.

    Summing to 1 makes it an average: smoothing keeps a signal's level (and a constant signal
    unchanged).
    """
    if taps < 1:
        raise ValueError(f"convolutions.gauss_taps must be at least 1, got {taps}.")
    if taps % 2 == 0:
        # scipy.ndimage centres a kernel on tap taps // 2: an even one shifts every output.
        raise ValueError(
            f"convolutions.gauss_taps must be odd so the Gaussian is centred on a tap (got "
            f"{taps}); use {taps - 1} or {taps + 1}."
        )
    if not halfwidth > 0:
        raise ValueError(f"convolutions.gauss_halfwidth must be positive, got {halfwidth}.")
    g = np.exp(-(np.linspace(-halfwidth, halfwidth, taps) ** 2))
    return g / g.sum()


def gaussian_2d(g: np.ndarray) -> np.ndarray:
    """Outer product ``g[i] * g[j]``: a separable 2-D Gaussian that also sums to 1."""
    return g * g[:, None]


def smooth(signal: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve a 1-D signal with ``kernel`` (reflect padding: output has the input's length)."""
    return convolve(np.asarray(signal, dtype=np.float64), np.asarray(kernel, dtype=np.float64))


def blur_color(img: np.ndarray, g2d: np.ndarray) -> np.ndarray:
    """Blur each colour channel of an ``(H, W, C)`` image with ``g2d``; float64 result.

    The kernel gets a length-1 channel axis, so channels never mix. The image is converted to
    float first: ``convolve`` returns its input's dtype, and on ``uint8`` it would truncate.
    """
    img = np.asarray(img)
    if img.ndim != 3:
        raise ValueError(f"blur_color expects an (H, W, channels) image, got shape {img.shape}.")
    return convolve(img.astype(np.float64), np.asarray(g2d, dtype=np.float64)[:, :, None])


def to_grey(img: np.ndarray) -> np.ndarray:
    """Mean of the colour channels, as float64 (the notebook's ``img.mean(axis=2)``)."""
    img = np.asarray(img)
    if img.ndim != 3:
        raise ValueError(f"to_grey expects an (H, W, channels) image, got shape {img.shape}.")
    return img.astype(np.float64).mean(axis=2)


def gradient_filter(g2d: np.ndarray) -> np.ndarray:
    """Horizontal difference of the 2-D Gaussian: a smoothed-derivative (Sobel-like) filter.

    ``convolve(g2d, [[-1, 1]])`` gives ``out[:, j] = g2d[:, j] - g2d[:, j + 1]``, and 0 in the
    last column (the reflected neighbour equals it). It sums to 0: flat regions give no
    response.
    """
    return convolve(np.asarray(g2d, dtype=np.float64), np.array([[-1.0, 1.0]]))


def edge_map(grey: np.ndarray, gradient_2d: np.ndarray) -> np.ndarray:
    """Response of a greyscale image to the gradient filter: large where brightness changes
    from left to right (negative for dark-to-bright, positive for bright-to-dark)."""
    return convolve(np.asarray(grey, dtype=np.float64), gradient_2d)


def compute_all(cfg: config.ConvolutionsConfig, image: np.ndarray) -> dict[str, np.ndarray]:
    """Every array the figures show, from the params and an ``(H, W, 3)`` image."""
    walk = random_walk(cfg.walk_seed, cfg.walk_steps)
    g = gaussian_1d(cfg.gauss_taps, cfg.gauss_halfwidth)
    g2d = gaussian_2d(g)
    grey = to_grey(image)
    gradient = gradient_filter(g2d)
    return {
        "walk": walk,
        "smoothed": smooth(walk, g),
        "g": g,
        "g2d": g2d,
        "image": np.asarray(image),
        "blurred": blur_color(image, g2d),
        "grey": grey,
        "gradient": gradient,
        "edges": edge_map(grey, gradient),
    }


def _num(x: Any) -> float:
    # 12 significant digits: last-bit differences between platforms do not change the file,
    # and -0.0 is written as 0.0.
    return float(f"{float(x):.12g}") + 0.0


def summarize(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Filter sums, shapes and a few values: what a reader (or a diff) checks at a glance."""

    def stats(a: np.ndarray) -> dict[str, float]:
        return {"min": _num(a.min()), "max": _num(a.max()), "mean": _num(a.mean())}

    g = arrays["g"]
    walk, smoothed = arrays["walk"], arrays["smoothed"]
    return {
        "random_walk": {
            "steps": int(walk.size),
            "first": [_num(v) for v in walk[:3]],
            "last": _num(walk[-1]),
            "smoothed_first": [_num(v) for v in smoothed[:3]],
            "smoothed_last": _num(smoothed[-1]),
        },
        "gaussian_1d": {
            "taps": int(g.size),
            "sum": _num(g.sum()),
            "center": _num(g[g.size // 2]),
            "end": _num(g[0]),
        },
        "gaussian_2d": {"shape": list(arrays["g2d"].shape), "sum": _num(arrays["g2d"].sum())},
        "gradient": {
            "shape": list(arrays["gradient"].shape),
            "sum": _num(arrays["gradient"].sum()),
            "min": _num(arrays["gradient"].min()),
            "max": _num(arrays["gradient"].max()),
        },
        "image": {"shape": list(arrays["image"].shape), "dtype": str(arrays["image"].dtype)},
        "blurred": stats(arrays["blurred"]),
        "grey": stats(arrays["grey"]),
        "edges": {**stats(arrays["edges"]), "abs_mean": _num(np.abs(arrays["edges"]).mean())},
    }


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------
def fig_random_walk(walk: np.ndarray, smoothed: np.ndarray, lang: str) -> Figure:
    with plotting.plot_style():
        fig = plotting.new_figure(plotting.FIGSIZE_WIDE)
        ax = fig.add_subplot()
        ax.plot(walk, color="0.55", linewidth=1.0, label=label("random_walk", lang))
        ax.plot(smoothed, color="C0", linewidth=2.0, label=label("smoothed", lang))
        ax.set_title(label("random_walk_title", lang))
        ax.set_xlabel(label("step", lang))
        ax.set_ylabel(label("value", lang))
        ax.grid(True)
        ax.legend(loc="best")
    return fig


def fig_gaussian_1d(g: np.ndarray, lang: str) -> Figure:
    with plotting.plot_style():
        fig = plotting.new_figure(plotting.FIGSIZE_WIDE)
        ax = fig.add_subplot()
        ax.plot(np.arange(g.size), g, "o", color="C0", markersize=7)
        ax.set_title(label("gaussian_1d_title", lang, taps=g.size))
        ax.set_xlabel(label("tap", lang))
        ax.set_ylabel(label("weight", lang))
        ax.set_ylim(bottom=0)
        ax.grid(True)
    return fig


def _image_axes(fig: Figure, title_key: str, lang: str) -> Any:
    ax = fig.add_subplot()
    ax.set_title(label(title_key, lang))
    ax.set_xlabel(label("column", lang))
    ax.set_ylabel(label("row", lang))
    return ax


def _matrix_figure(m: np.ndarray, title_key: str, lang: str, **imshow: Any) -> Figure:
    with plotting.plot_style():
        fig = plotting.new_figure(plotting.FIGSIZE_SQUARE)
        ax = _image_axes(fig, title_key, lang)
        im = ax.matshow(m, **imshow)
        # matshow puts ticks on top; the column label goes with them.
        ax.xaxis.set_label_position("top")
        cbar = fig.colorbar(im, ax=ax, shrink=0.9)
        cbar.set_label(label("weight", lang))
    return fig


def fig_image(img: np.ndarray, lang: str) -> Figure:
    with plotting.plot_style():
        fig = plotting.new_figure(plotting.FIGSIZE_IMAGE)
        _image_axes(fig, "image_title", lang).imshow(img)
    return fig


def fig_gaussian_2d(g2d: np.ndarray, lang: str) -> Figure:
    return _matrix_figure(g2d, "gaussian_2d_title", lang, cmap="viridis", vmin=0)


def fig_blurred(blurred: np.ndarray, lang: str) -> Figure:
    with plotting.plot_style():
        fig = plotting.new_figure(plotting.FIGSIZE_IMAGE)
        # imshow wants floats in [0, 1] for RGB.
        _image_axes(fig, "blurred_title", lang).imshow(np.clip(blurred, 0, 255) / 255.0)
    return fig


def fig_grey(grey: np.ndarray, lang: str) -> Figure:
    with plotting.plot_style():
        fig = plotting.new_figure(plotting.FIGSIZE_IMAGE)
        ax = _image_axes(fig, "grey_title", lang)
        ax.imshow(grey, cmap="gray", vmin=0, vmax=255)
    return fig


def fig_gradient_filter(gradient: np.ndarray, lang: str) -> Figure:
    # Diverging map centred on 0: blue negative, red positive, white no weight.
    m = float(np.abs(gradient).max()) or 1.0
    return _matrix_figure(gradient, "gradient_title", lang, cmap="RdBu_r", vmin=-m, vmax=m)


def fig_edges(edges: np.ndarray, lang: str) -> Figure:
    with plotting.plot_style():
        fig = plotting.new_figure(plotting.FIGSIZE_IMAGE)
        ax = _image_axes(fig, "edges_title", lang)
        # Symmetric limits: flat regions (response 0) are mid-grey, both edge signs visible.
        m = float(np.abs(edges).max()) or 1.0
        im = ax.imshow(edges, cmap="gray", vmin=-m, vmax=m)
        cbar = fig.colorbar(im, ax=ax, shrink=0.8)
        cbar.set_label(label("response", lang))
    return fig


def make_figures(arrays: Mapping[str, np.ndarray], lang: str) -> dict[str, Figure]:
    """The eight figures, keyed by file stem in the notebook's order."""
    return {
        "01_random_walk": fig_random_walk(arrays["walk"], arrays["smoothed"], lang),
        "02_gaussian_1d": fig_gaussian_1d(arrays["g"], lang),
        "03_image": fig_image(arrays["image"], lang),
        "04_gaussian_2d": fig_gaussian_2d(arrays["g2d"], lang),
        "05_blurred": fig_blurred(arrays["blurred"], lang),
        "06_grey": fig_grey(arrays["grey"], lang),
        "07_gradient_filter": fig_gradient_filter(arrays["gradient"], lang),
        "08_edges": fig_edges(arrays["edges"], lang),
    }


# --------------------------------------------------------------------------------------
# Edge: files
# --------------------------------------------------------------------------------------
def min_image_side(taps: int) -> int:
    """Smallest width and height the image demos accept: twice the 2-D kernel's side.

    The blur and the edge filter are ``taps x taps``; within ``taps // 2`` pixels of a border
    they read reflected pixels (``mode="reflect"``). With sides of at least ``2 * taps``, more
    than half of the rows and of the columns of the blurred and edge images are computed from
    the image alone; below that the figures mostly show the padding, and an image smaller
    than the kernel shows nothing at all (a 1x1 one: every image figure one flat colour).
    Checked on the decoded image, before scipy or matplotlib is imported.
    """
    return 2 * taps


def check_image_size(path: str | Path, image: np.ndarray, taps: int) -> None:
    """Refuse an image too small for the demos (see :func:`min_image_side`) naming the fix."""
    height, width = np.asarray(image).shape[:2]
    side = min_image_side(taps)
    if width < side or height < side:
        raise ValueError(
            f"{Path(path).as_posix()} is {width}x{height} pixels, smaller than the {side}x{side} "
            f"the convolution demos need (twice the {taps}x{taps} kernel of "
            "convolutions.gauss_taps on each side, so that most of each blurred and edge "
            "image comes from the image itself, not its reflected border): use a larger image "
            "(DEMO_IMAGE=/path/to/image.jpg or data.image_local, then `dvc repro download`) "
            "or fewer convolutions.gauss_taps."
        )


def load_image(path: str | Path) -> np.ndarray:
    """The image as ``(H, W, 3)`` uint8 RGB (greyscale and alpha images are converted)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def read_image(path: Path, taps: int) -> np.ndarray:
    """The demo image at ``path``, refused (StageError) when missing, unreadable or too small
    for a ``taps``-tap kernel (:func:`check_image_size`)."""
    try:
        image = load_image(path)
        check_image_size(path, image, taps)
    except (OSError, ValueError) as exc:
        raise errors.StageError(str(exc)) from exc
    return image


def render(arrays: Mapping[str, np.ndarray], lang: str, dpi: int) -> dict[str, bytes]:
    """Every figure as PNG bytes by file name, rendered before anything is written so that a
    failure leaves no partial set."""
    figures = make_figures(arrays, lang)
    return {f"{name}.png": plotting.figure_png_bytes(fig, dpi) for name, fig in figures.items()}


def stage_summary(arrays: Mapping[str, np.ndarray], image_path: Path) -> dict:
    """:func:`summarize`, with the image's path and digest first."""
    summary = summarize(arrays)
    summary["image"] = {
        "path": image_path.as_posix(),
        "sha256": files.file_sha256(image_path),
        **summary["image"],
    }
    return summary
