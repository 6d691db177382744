"""``params.yaml`` read into typed sections (:mod:`intro_cnn.config.schema`).

A bad file raises :class:`~intro_cnn.runtime.errors.ConfigError` whose message names the file,
the key path, the bad value and what is allowed (model names are checked against
``intro_cnn/architectures/``); stages turn it into exit status 2 before importing anything heavy.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any

import yaml
from pydantic import TypeAdapter, ValidationError

from intro_cnn.config.paths import PARAMS_FILE
from intro_cnn.config.schema import Params
from intro_cnn.runtime.errors import ConfigError

_PARAMS = TypeAdapter(Params)
# YAML 1.2 floats (``1e-3``), as DVC reads params.yaml; PyYAML alone reads ``1e-3`` as a string.
_FLOAT = re.compile(
    r"^[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?$"
    r"|^[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)$"
    r"|^\.[0-9_]+(?:[eE][-+][0-9]+)?$"
    r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses duplicate keys and reads YAML 1.2 floats."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice (first on line {seen[key].start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:float"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _keys_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys the schema allows at ``loc`` (for a message about an unknown key)."""
    import dataclasses
    import typing

    tp: Any = Params
    for part in loc:
        while typing.get_origin(tp) is Annotated:
            tp = typing.get_args(tp)[0]
        if dataclasses.is_dataclass(tp):
            tp = typing.get_type_hints(tp, include_extras=True).get(str(part))
        elif typing.get_origin(tp) in (Mapping, dict, tuple):
            tp = (
                typing.get_args(tp)[-1]
                if typing.get_origin(tp) is not tuple
                else (typing.get_args(tp)[0])
            )
        if tp is None:
            return []
    while typing.get_origin(tp) is Annotated or typing.get_origin(tp) in (type(None),):
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) is not None and type(None) in typing.get_args(tp):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return [f.name for f in dataclasses.fields(tp)] if dataclasses.is_dataclass(tp) else []


def _message(error: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    where = _path(loc)
    kind = error["type"]
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        valid = ", ".join(_keys_at(loc[:-1])) or "none"
        return f"{where}: unknown key (a typo?); valid keys here: {valid}"
    if kind == "missing" or kind == "missing_argument":
        return f"{where}: missing; add it (params.yaml in git has every key)"
    if kind in ("dataclass_type", "dict_type", "mapping_type", "model_type"):
        return f"{where} = {_show(error['input'])}: expected a mapping of keys to values"
    message = error["msg"]
    message = message.removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    return f"{where} = {_show(error['input'])}: {message}"


def _check_names(params: Params) -> list[str]:
    """Names that must refer to something that exists (a model builder), and sane rules.

    Thresholds may name models missing from ``models``: the gate reports those as failures.
    """
    from intro_cnn.architectures import model_names, new_model_hint

    problems = []
    known = model_names()
    for name in params.models:
        if name not in known:
            problems.append(
                f"models.{name}: no model builder named {name!r}; valid names: "
                f"{', '.join(known)} (to define it, {new_model_hint(name)})"
            )
    for name in params.replicates.models:
        if name not in params.models:
            problems.append(
                f"replicates.models: {name!r} is not in `models`; replicate one of "
                f"{', '.join(params.models)}"
            )
        elif params.seed_for(name) in params.replicates.seeds:
            problems.append(
                f"replicates.seeds: {params.seed_for(name)} is already {name}'s designated seed; "
                "list only the other seeds"
            )
    for i, rule in enumerate(params.thresholds.better_than):
        if rule.model == rule.than:
            problems.append(f"thresholds.better_than[{i}]: a model cannot beat itself")
    return problems


def _error(source: str, problems: list[str]) -> ConfigError:
    if len(problems) == 1:
        return ConfigError(f"{source}: {problems[0]}.")
    lines = "\n".join(f"  - {p}" for p in problems)
    return ConfigError(f"{source} has {len(problems)} errors:\n{lines}")


def parse_params(raw: Any, source: str = PARAMS_FILE) -> Params:
    """Validate a params mapping (as loaded from YAML) into typed sections.

    Raises :class:`ConfigError` listing every problem, each with its key path and bad value.
    """
    if not isinstance(raw, Mapping):
        raise _error(source, [f"expected a mapping of sections, got {_show(raw)}"])
    try:
        params = _PARAMS.validate_python(dict(raw))
    except ValidationError as exc:
        raise _error(source, [_message(e) for e in exc.errors()]) from None
    problems = _check_names(params)
    if problems:
        raise _error(source, problems)
    return params


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file; a syntax error becomes a :class:`ConfigError` with line and column."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.load(fh, Loader=_Loader)
    except FileNotFoundError:
        raise ConfigError(
            f"{path} not found: run from the repository root (where params.yaml is)."
        ) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as UTF-8 text ({exc}).") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        detail = f"{context}, {problem}" if context else problem
        raise ConfigError(
            f"{where}: YAML syntax error: {detail}. Check the indentation, colons and quotes "
            "there (line and column after the file name)."
        ) from None


def load_params(path: str | os.PathLike[str] = PARAMS_FILE) -> Params:
    """Read and validate ``params.yaml`` (relative to the current directory by default)."""
    raw = read_yaml(path)
    if raw is None:
        raise ConfigError(f"{path} is empty: restore it with `git checkout -- {path}`.")
    return parse_params(raw, str(path))
