"""A demo image too small for the convolution demos: the stage refuses it, as a user sees it.

Exit status 1 (the stage's other input errors: a missing or corrupt image), one message naming
the file, its size, the minimum and the fix, no traceback, nothing heavy imported and nothing
written: the previous figures stay byte for byte. The minimum is twice the 2-D kernel
(``convolutions.gauss_taps``) on each side; an image of exactly that size still works.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from intro_cnn import config
from intro_cnn.demos import convolutions

from .conftest import listing, report, spawn

IMAGE = Path("data/raw/image/image.jpg")
TAPS = 15  # params.yaml's, the notebook's


def _with_image(workdir: Path, width: int, height: int, name: str = "image.jpg") -> Path:
    rng = np.random.RandomState(0)
    pixels = rng.randint(0, 256, size=(height, width, 3)).astype(np.uint8)
    path = workdir / config.RAW_IMAGE_DIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def _previous_figures(workdir: Path) -> dict[str, bytes]:
    """A previous run's outputs (stand-ins): a refusal must leave them as they are."""
    out = workdir / config.CONV_DIR
    out.mkdir(parents=True)
    for name in ("01_random_walk.png", "08_edges.png", "summary.json"):
        (out / name).write_bytes(f"previous {name}".encode())
    return {p.name: p.read_bytes() for p in out.iterdir()}


def test_the_default_params_are_the_ones_the_minimum_is_stated_for():
    assert config.load_params(config.ROOT / config.PARAMS_FILE).convolutions.gauss_taps == TAPS
    assert convolutions.min_image_side(TAPS) == 30


@pytest.mark.parametrize(("width", "height"), [(1, 1), (5, 5), (29, 600), (800, 29)])
def test_too_small_an_image_is_refused_and_nothing_is_written(
    workdir: Path, width: int, height: int
):
    _with_image(workdir, width, height)
    previous = _previous_figures(workdir)
    before = listing(workdir)
    outcome = spawn(["stages.convolutions"], workdir)
    after = listing(workdir)
    report(f"demo image {width}x{height}", outcome, "unchanged" if after == before else after)

    assert outcome.code == 1, outcome.stderr[-3000:]
    assert "Traceback" not in outcome.stderr
    errors = [line for line in outcome.errors if line.startswith("ERROR")]
    assert len(errors) == 1, outcome.errors
    message = errors[0]
    assert f"{IMAGE.as_posix()} is {width}x{height} pixels" in message, message
    assert "smaller than the 30x30 the convolution demos need" in message, message
    assert "15x15 kernel of convolutions.gauss_taps" in message, message
    assert "DEMO_IMAGE=" in message and "data.image_local" in message, message
    assert "dvc repro download" in message, message
    # Refused before the convolutions or figures are started.
    assert not {"scipy", "matplotlib", "tensorflow"} & {m.split(".")[0] for m in outcome.imported}
    assert after == before
    out = workdir / config.CONV_DIR
    assert {p.name: p.read_bytes() for p in out.iterdir()} == previous


def test_the_minimum_follows_gauss_taps(workdir: Path):
    """With a 5-tap Gaussian a 10x10 image is enough, and 9x10 is not."""
    raw = yaml.safe_load((workdir / config.PARAMS_FILE).read_text())
    raw["convolutions"]["gauss_taps"] = 5
    raw["report"]["dpi"] = 20
    (workdir / config.PARAMS_FILE).write_text(yaml.safe_dump(raw, sort_keys=False))

    _with_image(workdir, 9, 10)
    outcome = spawn(["stages.convolutions"], workdir)
    assert outcome.code == 1, outcome.stderr[-3000:]
    assert "is 9x10 pixels, smaller than the 10x10" in outcome.stderr
    assert "5x5 kernel" in outcome.stderr
    assert not (workdir / config.CONV_DIR).exists()

    _with_image(workdir, 10, 10)
    outcome = spawn(["stages.convolutions"], workdir)
    report("demo image 10x10, 5 taps", outcome, "written")
    assert outcome.code == 0, outcome.stderr[-3000:]
    out = workdir / config.CONV_DIR
    assert len(list(out.glob("*.png"))) == 8 and (out / "summary.json").is_file()
