"""The demo image of the convolution figures: ``$DEMO_IMAGE`` or ``data.image_local`` when set
(and then it must work), else ``data.image_url``, else matplotlib's bundled portrait of Grace
Hopper, with a loud warning and ``"fallback": true`` in its record."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from intro_cnn.config import DataConfig
from intro_cnn.runtime.files import file_sha256
from intro_cnn.sources.fetch import SOURCE_ERRORS, DownloadError, fetch_file
from intro_cnn.sources.raw_formats import Record, image_suffix, short_reason, verify_image

logger = logging.getLogger(__name__)

# Overrides data.image_local without editing params.yaml (handy offline).
DEMO_IMAGE_ENV = "DEMO_IMAGE"
# matplotlib's bundled sample photo: the demo image when the notebook's URL is unreachable.
FALLBACK_IMAGE = "grace_hopper.jpg"


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
        except SOURCE_ERRORS as exc:
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
        except SOURCE_ERRORS as exc:
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
    except SOURCE_ERRORS as exc:
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
