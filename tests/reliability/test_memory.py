"""Running out of memory is one clear line and exit 1, never an uncaught MemoryError."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from intro_cnn import config

from .conftest import Outcome, listing, report, stage_env

# Address space granted to the stage: enough to start Python, numpy, scipy and matplotlib,
# far too little for the float64 convolutions of a 40-megapixel image (about 1 GB per array).
LIMIT_BYTES = 2 * 2**30


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is enforced on Linux")
def test_convolutions_out_of_memory_is_one_line(workdir: Path):
    image_dir = workdir / config.RAW_IMAGE_DIR
    image_dir.mkdir(parents=True)
    # Under data.image_max_pixels (50 MP), so download would accept it.
    Image.new("RGB", (8000, 5000), (200, 100, 50)).save(image_dir / "image.png")
    before = listing(workdir)
    env = stage_env(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "stages.convolutions"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=_limit,
        timeout=300,
    )
    outcome = Outcome(out.returncode, out.stderr, time.perf_counter() - start, set())
    report("convolutions out of memory (2 GB limit, 40 MP image)", outcome, "unchanged")
    assert out.returncode == 1, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "MemoryError" not in out.stderr
    assert "convolutions: out of memory; nothing was written" in out.stderr
    assert listing(workdir) == before
