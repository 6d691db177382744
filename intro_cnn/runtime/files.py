"""Small file helpers shared by the stages: atomic writes and byte-reproducible npz files.

A stage never leaves a half-written output behind: it writes to a temporary file beside the
target and renames it into place (atomic on POSIX), so a killed run leaves either the old
file or nothing, never something DVC would cache as good.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from intro_cnn.runtime.errors import StageError

# Fixed zip timestamp: identical arrays give identical bytes, so DVC sees no change when the
# same data arrives from another source.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it onto ``target`` only on success.

    ``suffix`` ends the temporary name, for writers that insist on one (Keras: ``.keras``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give outputs the usual permissions.
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new empty folder beside ``target``; on success it replaces ``target`` whole.

    The folder is never seen half-written, nor mixing old and new files.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
    old = target.parent / f".{target.name}.{os.getpid()}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()  # plain mkdir: the usual permissions (mkdtemp's would be 0700)
    try:
        yield tmp
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def zip_bytes(
    members: Iterator[tuple[str, bytes]] | list[tuple[str, bytes]], compress: bool = False
) -> bytes:
    """A zip archive whose bytes depend only on the members' names, order and contents:
    fixed timestamps and permissions, no extra fields."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def restamp_zip(
    path: str | os.PathLike[str], rewrite: Mapping[str, Callable[[bytes], bytes]] | None = None
) -> None:
    """Rewrite the zip at ``path`` in place as :func:`zip_bytes` does, members in their order,
    each member named in ``rewrite`` passed through its function first."""
    rewrite = rewrite or {}
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        compress = any(i.compress_type != zipfile.ZIP_STORED for i in infos)
        members = [(i.filename, rewrite.get(i.filename, _same)(zf.read(i))) for i in infos]
    write_bytes(path, zip_bytes(members, compress=compress))


def _same(data: bytes) -> bytes:
    return data


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike[str], text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def json_text(obj: Any) -> str:
    """The project's JSON layout: sorted keys, two-space indent, UTF-8, final newline."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(target: str | os.PathLike[str], obj: Any) -> None:
    write_text(target, json_text(obj))


class Outputs:
    """A stage's small output files, held in memory and written together at the very end.

    Nothing reaches its target until :meth:`commit`, called once every step of the stage (its
    MLflow logging included) has succeeded; a failure before that leaves the previous outputs.
    """

    def __init__(self) -> None:
        self.files: dict[Path, bytes] = {}

    def add_bytes(self, target: str | os.PathLike[str], data: bytes) -> None:
        self.files[Path(target)] = data

    def add_text(self, target: str | os.PathLike[str], text: str) -> None:
        self.add_bytes(target, text.encode("utf-8"))

    def add_json(self, target: str | os.PathLike[str], obj: Any) -> None:
        self.add_text(target, json_text(obj))

    def copy_to(self, root: Path) -> None:
        """Write every file under ``root`` (same relative paths), e.g. to log them first."""
        for target, data in self.files.items():
            path = root / target
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def commit(self) -> None:
        """Move every file into place, each atomically."""
        for target, data in self.files.items():
            write_bytes(target, data)


def require(path: Path, fix: str) -> Path:
    """``path``, or a :class:`~intro_cnn.runtime.errors.StageError` naming the command that
    makes it (``fix``, e.g. ``dvc repro preprocess``) when it does not exist."""
    if not path.exists():
        raise StageError(f"{path} not found: run `{fix}` first.")
    return path


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def npz_bytes(arrays: Mapping[str, np.ndarray], compress: bool = True) -> bytes:
    """Serialise arrays as an ``.npz`` whose bytes depend only on the arrays.

    ``compress=False`` stores members uncompressed: large float arrays load much faster.
    """

    def member(name: str) -> tuple[str, bytes]:
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
        return f"{name}.npy", buf.getvalue()

    return zip_bytes([member(name) for name in sorted(arrays)], compress=compress)


def write_npz(
    target: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], compress: bool = True
) -> None:
    """Atomically write a byte-reproducible ``.npz``."""
    write_bytes(target, npz_bytes(arrays, compress=compress))


def array_sha256(array: np.ndarray) -> str:
    """SHA-256 of an array's C-contiguous bytes: the same whatever file it came from."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
