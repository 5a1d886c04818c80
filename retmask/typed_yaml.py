"""Typed loading of YAML data into (nested) dataclasses: an unknown key, a wrong type or a bad
value is one ConfigError naming the key and what is allowed."""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from retmask.errors import UserError


class ConfigError(UserError):
    """A configuration problem, stated with the key at fault and what would be right."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if value is None:
            return None
        return _coerce(value, options[0], key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {', '.join(f.name for f in dataclasses.fields(tp))}, "
                              f"got {type(value).__name__} {value!r}")
        return from_dict(tp, value, key)
    if origin is list:
        (item_type,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list of {_type_name(item_type)}, got {value!r}")
        return [_coerce(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        key_type, value_type = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {_type_name(key_type)} to {_type_name(value_type)}, "
                              f"got {value!r}")
        return {_coerce(k, key_type, key): _coerce(v, value_type, f"{key}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # YAML reads 5e-7 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


def from_dict(cls: type, data: dict, key: str = "") -> Any:
    """Build dataclass `cls` from `data`; unknown keys and wrong types are errors naming the key."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    prefix = f"{key}." if key else ""
    for name in data:
        if name not in names:
            raise ConfigError(f"{prefix}{name}: unknown key; allowed keys here: {', '.join(names)}")
    values = {name: _coerce(data[name], hints[name], f"{prefix}{name}") for name in data}
    obj = cls(**values)
    for f in dataclasses.fields(cls):
        child = getattr(obj, f.name)
        if dataclasses.is_dataclass(child) and hasattr(child, "validate"):
            child.validate(f"{prefix}{f.name}")
    if hasattr(obj, "validate") and not key:
        obj.validate()
    return obj


def apply_override(data: dict, assignment: str) -> None:
    """Apply one `section.key=value` override (value parsed as YAML) to raw config data."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r}: expected section.key=value")
    dotted, raw = assignment.split("=", 1)
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {assignment!r}: {part} is not a section")
    node[parts[-1]] = yaml.safe_load(raw)


def read_yaml_mapping(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data


def read_config_file(path: Path, what: str, _seen: tuple[Path, ...] = ()) -> dict:
    """A config file's mapping; `extends: OTHER.yaml` (relative to it) takes the other file's keys
    first and this file's over them, section by section."""
    path = Path(path)
    data = read_yaml_mapping(path, what)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: extends: expected the path of one config file, got {parent!r}")
    base = (path.parent / parent).resolve()
    if base in _seen or base == path.resolve():
        chain = (*_seen, path.resolve(), base)
        raise ConfigError(f"{path}: extends {parent} makes a loop ({' -> '.join(p.name for p in chain)})")
    return merge_mappings(read_config_file(base, f"{path.name}: extends", (*_seen, path.resolve())), data)


def merge_mappings(base: dict, extra: dict) -> dict:
    """`extra` merged into `base` key by key (nested mappings merged, everything else replaced)."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_mappings(base[key], value)
        else:
            base[key] = value
    return base


def check_choice(key: str, name: str, value: str, allowed: tuple[str, ...]) -> None:
    """`key.name` must be one of `allowed`: else one error naming them."""
    if value not in allowed:
        raise ConfigError(f"{key}.{name}: {value!r} is not one of {', '.join(allowed)}")


def check_positive(key: str, name: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{key}.{name} must be >= 1, got {value}")
