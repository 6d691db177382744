"""The locked environment: requirements.lock, exact versions and hashes for Linux x86-64.

    python3 scripts/lock.py            # (make lock) re-resolve after editing pyproject.toml
    python3 scripts/lock.py --upgrade  # (make lock-upgrade) newest versions pyproject allows
    python3 scripts/lock.py --check    # (make setup) exit 1 when the lock is stale
    python3 scripts/lock.py --uv-pin   # (make setup) the lock's entry for uv, hashes included

The lock is written by ``uv pip compile`` for the supported platform (CPython 3.11 on
manylinux x86-64), with every extra except ``gpu`` and the build backend, and is installed
by ``uv pip install --require-hashes`` (uv itself first, from its own entry in the lock, by
``pip install --require-hashes``). Re-resolving keeps every pin that still satisfies
pyproject.toml (uv prefers the versions already in the output file); ``--upgrade`` drops
that preference. The lock's first line records a hash of what it was resolved from (the
dependency lists, requires-python, the build requirements and the resolver settings), so a
change to those in pyproject.toml without a new lock is caught before anything installs.
Standard library only: it runs before the virtual environment exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements.lock"
# The one supported platform of the lock; other platforms install unlocked (README).
PYTHON_VERSION = "3.11"
PYTHON_PLATFORM = "x86_64-manylinux_2_28"
# Extras that are not locked: `gpu` pulls ~3 GB of CUDA wheels, installed on demand.
UNLOCKED_EXTRAS = ("gpu",)
HASH_PREFIX = "# inputs-sha256: "


class LockError(RuntimeError):
    """The lock cannot be used or made (the message says how to fix it)."""


def locked_extras(project: dict) -> list[str]:
    return sorted(e for e in project.get("optional-dependencies", {}) if e not in UNLOCKED_EXTRAS)


def inputs_hash(pyproject: dict) -> str:
    """SHA-256 of everything in pyproject.toml the lock is resolved from."""
    project = pyproject["project"]
    extras = locked_extras(project)
    inputs = {
        "requires-python": project.get("requires-python", ""),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": {e: project["optional-dependencies"][e] for e in extras},
        "build-requires": pyproject.get("build-system", {}).get("requires", []),
        "platform": [PYTHON_VERSION, PYTHON_PLATFORM],
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def read_pyproject(path: Path = PYPROJECT) -> dict:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def recorded_hash(lock: Path = LOCK) -> str:
    if not lock.exists():
        return ""
    first = lock.read_text(encoding="utf-8").split("\n", 1)[0]
    return first[len(HASH_PREFIX) :].strip() if first.startswith(HASH_PREFIX) else ""


def check(pyproject: Path = PYPROJECT, lock: Path = LOCK) -> None:
    """Raise :class:`LockError` unless ``lock`` was resolved from ``pyproject``'s inputs."""
    if not lock.exists():
        raise LockError(f"{lock.name} is missing: run `make lock` to resolve it.")
    if recorded_hash(lock) != inputs_hash(read_pyproject(pyproject)):
        raise LockError(
            f"{lock.name} is stale: pyproject.toml's dependencies changed since it was resolved. "
            "Run `make lock` (needs a package index), review the diff and commit both files."
        )


def uv_pin(lock: Path = LOCK) -> str:
    """The lock's own entry for uv (its version and hashes), which ``make setup`` installs first
    with pip, then installs the whole lock with it."""
    lines = lock.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("uv==")), None)
    if start is None:
        raise LockError(f"{lock.name} pins no uv: run `make lock` (uv is a `dev` dependency).")
    end = start
    while lines[end].endswith("\\"):
        end += 1
    return "\n".join(lines[start : end + 1]) + "\n"


def find_uv() -> str:
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.exists() else shutil.which("uv")
    if not found:
        raise LockError("uv not found: `pip install uv` (make lock does it in .venv).")
    return found


def compile_lock(upgrade: bool = False, lock: Path = LOCK) -> None:
    """Resolve the lock with uv and write it, hash line first, atomically."""
    pyproject = read_pyproject()
    build = pyproject.get("build-system", {}).get("requires", [])
    with tempfile.TemporaryDirectory() as tmp:
        build_in = Path(tmp) / "build-system.in"
        build_in.write_text("".join(f"{r}\n" for r in build), encoding="utf-8")
        out = Path(tmp) / "requirements.lock"
        if lock.exists() and not upgrade:
            shutil.copyfile(lock, out)  # uv keeps the pins it finds there
        cmd = [find_uv(), "pip", "compile", "pyproject.toml", str(build_in), "--quiet"]
        for extra in locked_extras(pyproject["project"]):
            cmd += ["--extra", extra]
        cmd += [
            "--generate-hashes",
            "--python-version",
            PYTHON_VERSION,
            "--python-platform",
            PYTHON_PLATFORM,
            "--no-header",
            "--output-file",
            str(out),
        ]
        if upgrade:
            cmd.append("--upgrade")
        env = {**os.environ, "UV_NO_CONFIG": "1"}
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise LockError(f"uv pip compile failed:\n{done.stderr.strip()}")
        body = out.read_text(encoding="utf-8").replace(str(build_in), "build-system.requires")
    header = (
        f"{HASH_PREFIX}{inputs_hash(pyproject)}\n"
        "# The locked environment (CPython 3.11, Linux x86-64). Do not edit: after changing\n"
        "# pyproject.toml run `make lock`; `make lock-upgrade` for newer versions.\n"
    )
    tmp_lock = lock.with_suffix(".tmp")
    tmp_lock.write_text(header + body, encoding="utf-8")
    os.replace(tmp_lock, lock)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail when the lock is stale")
    mode.add_argument("--upgrade", action="store_true", help="re-resolve to the newest versions")
    mode.add_argument("--uv-pin", action="store_true", help="print the lock's entry for uv")
    args = parser.parse_args(argv)
    try:
        if args.check:
            check()
        elif args.uv_pin:
            sys.stdout.write(uv_pin())
        else:
            compile_lock(upgrade=args.upgrade)
            print(f"wrote {LOCK.name} ({LOCK.stat().st_size:,} bytes)")
    except (LockError, OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        sys.exit(f"lock: {exc}")


if __name__ == "__main__":
    main()
