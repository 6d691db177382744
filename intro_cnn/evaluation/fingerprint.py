"""What the evaluation metrics belong to: digests of the evaluated inputs, recorded beside them.

Each ``evaluate@<model>`` records the SHA-256 of its model file and of the processed data, and
the params that produced them (:func:`for_model`); the compare stage merges those into
``config.COMPARE_INPUTS`` (:func:`merge`). The gate recomputes the same from the workspace
(:func:`fingerprint`) and refuses metrics whose inputs changed since (a model retrained, params
edited without ``dvc repro``, metrics left by another run), naming the stage to rerun.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from intro_cnn import config
from intro_cnn.runtime import files

# The params sections the evaluated models depend on (data is covered by the data digest).
PARAM_SECTIONS = ("preprocess", "seed", "train", "models", "evaluate")


def fingerprint(params: config.Params) -> dict[str, Any]:
    """Digests of the processed data and each model file, and the params that made them."""
    return _digests(params, list(params.models))


def for_model(params: config.Params, name: str) -> dict[str, Any]:
    """The part of :func:`fingerprint` that one model's evaluation depends on (only that
    model's file is hashed)."""
    return _digests(params, [name])


def _digests(params: config.Params, names: Sequence[str]) -> dict[str, Any]:
    data = config.PROCESSED_MNIST
    plain = {section: _plain(getattr(params, section)) for section in PARAM_SECTIONS}
    plain["models"] = {name: plain["models"][name] for name in names}
    return {
        "data": files.file_sha256(data) if data.exists() else None,
        "models": {name: _file_digest(config.model_path(name)) for name in names},
        "params": plain,
    }


def _file_digest(path: Path) -> str | None:
    return files.file_sha256(path) if path.exists() else None


def merge(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One fingerprint from the models' own (:func:`for_model`): models and their params are
    gathered; data and the shared params are kept when every part agrees, else None (which
    :func:`differences` reports as changed)."""
    data = {p.get("data") for p in parts}
    merged: dict[str, Any] = {
        "data": data.pop() if len(data) == 1 else None,
        "models": {},
        "params": {},
    }
    for part in parts:
        merged["models"] |= part.get("models") or {}
    for section in PARAM_SECTIONS:
        if section == "models":
            gathered: dict[str, Any] = {}
            for part in parts:
                gathered |= (part.get("params") or {}).get("models") or {}
            merged["params"]["models"] = gathered
            continue
        values = [(part.get("params") or {}).get(section) for part in parts]
        merged["params"][section] = values[0] if all(v == values[0] for v in values) else None
    return merged


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _changed_keys(old: Any, new: Any, prefix: str) -> list[str]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += _changed_keys(old.get(key), new.get(key), f"{prefix}.{key}")
        return out
    return [] if old == new else [f"{prefix} ({old!r} -> {new!r})"]


def differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Why metrics evaluated on ``recorded`` inputs do not belong to ``current`` ones."""
    problems = []
    if recorded.get("data") != current.get("data"):
        problems.append(f"{config.PROCESSED_MNIST} changed since the evaluation")
    old_models = recorded.get("models") or {}
    for name, digest in (current.get("models") or {}).items():
        if name not in old_models:
            problems.append(f"model {name} was not evaluated")
        elif digest is None:
            problems.append(f"{config.model_path(name)} is missing")
        elif old_models[name] != digest:
            problems.append(f"{config.model_path(name)} changed since the evaluation")
    changed = _changed_keys(recorded.get("params") or {}, current.get("params") or {}, "")
    if changed:
        shown = ", ".join(key.lstrip(".") for key in changed[:5])
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        problems.append(f"params.yaml changed since the evaluation: {shown}{more}")
    return problems


def rerun_hint(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """The command that brings the metrics back in line with the workspace."""
    old, new = recorded.get("params") or {}, current.get("params") or {}
    upstream = [s for s in PARAM_SECTIONS if s != "evaluate" and old.get(s) != new.get(s)]
    if upstream or recorded.get("data") != current.get("data"):
        return "`dvc repro` (the models must be retrained, then evaluated)"
    return "`dvc repro compare`"
