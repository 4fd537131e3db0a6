"""Typed configuration: dataclasses filled from YAML dicts and `key.sub=value` overrides.

Config flows one way: defaults in the dataclasses -> experiment YAML -> command-line overrides.
Unknown keys and wrong types are errors that list what is allowed, so a typo never silently
falls back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml


class ConfigError(ValueError):
    """A config key, value or file is wrong; the message names the key and what is allowed."""


class _BadValue(ConfigError):
    """The value has the right type but is not allowed (non-finite, out of range): within a Union
    this message is more useful than "expected int | float"."""


INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # what torch (seeds, sizes) and NumPy take: signed 64-bit


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line, self.first_line = key, line, first_line


class _StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden on purpose
            continue
        key, line = loader.construct_object(key_node, deep=True), key_node.start_mark.line + 1
        try:
            if key in seen:
                raise _DuplicateKey(key, line, seen[key])
            seen[key] = line
        except TypeError:  # an unhashable key: construct_mapping reports it
            continue
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        (inner,) = get_args(tp) or (Any,)
        return f"list[{_type_name(inner)}]"
    if origin is dict:
        return "mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`, converting only lossless cases (int -> float)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(f"{where}: {value!r} is not allowed; choose one of {_type_name(tp)}")
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        bad_value = None
        # Try exact-type members first so `Union[int, float]` keeps an int an int.
        for arg in sorted(args, key=lambda a: 0 if isinstance(value, a if isinstance(a, type) else ()) else 1):
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except _BadValue as err:
                if isinstance(arg, type) and isinstance(value, arg) and not isinstance(value, bool):
                    raise  # a huge int stays an error, not a float of another meaning
                bad_value = bad_value or err
            except ConfigError:
                if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                    raise   # a mapping meant for this section: its own message says what is wrong in it
        if bad_value is not None:
            raise bad_value
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
        (inner,) = get_args(tp) or (Any,)
        return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_tp, value_tp = get_args(tp) or (Any, Any)
        return {_coerce(k, key_tp, f"{where} key"): _coerce(v, value_tp, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        else:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if not INT_MIN <= number <= INT_MAX:
            raise _BadValue(f"{where}: {value!r} is out of range; use an integer in -2**63..2**63-1 "
                            "(signed 64-bit, what torch takes)")
        return number
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int beyond 1.8e308
                number = math.inf
        elif isinstance(value, str):
            # YAML 1.1 reads "1e-4" (no dot) as a string; accept it as the number it spells.
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(number):
            raise _BadValue(f"{where}: {value!r} is not a finite number; use a finite value (inf and nan "
                            "are not allowed)")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported field type {tp!r}")  # a bug in a config class


def from_dict(cls: type, data: Any, where: str = "config") -> Any:
    """Build dataclass `cls` from a mapping, rejecting unknown keys and wrong types."""
    if data is None:
        data = {}
    if dataclasses.is_dataclass(data) and isinstance(data, cls):
        return data
    prefix = f"{where}: " if where else ""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")}
    aliases: dict[str, str] = getattr(cls, "_aliases", {}) or {}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = aliases.get(key, key)
        if name not in fields:
            allowed = sorted(fields) + sorted(aliases)
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{prefix}unknown key {key!r}.{hint} Allowed keys: {', '.join(allowed)}")
        if name in kwargs:
            raise ConfigError(f"{prefix}{key!r} and its alias both set {name!r}; keep one")
        kwargs[name] = _coerce(value, hints[name], f"{where}.{key}" if where else key)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        # Config classes' own checks already name their full key ("data.normalize=..."): keep
        # the message as is then, else say which section it came from.
        text = str(err)
        raise ConfigError(text if where and text.startswith(where + ".") else f"{prefix}{text}") from None


def to_dict(obj: Any) -> dict:
    """Plain dict of a config dataclass (private `_` fields left out)."""
    out = {}
    for f in dataclasses.fields(obj):
        if f.name.startswith("_"):
            continue
        out[f.name] = _plain(getattr(obj, f.name))
    return out


def _plain(value: Any) -> Any:
    """Dataclasses (also inside lists, e.g. the stages) as dicts, for YAML."""
    if dataclasses.is_dataclass(value):
        return to_dict(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """`optimizer.lr=0.01` -> (["optimizer", "lr"], 0.01); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value (e.g. optimizer.lr=0.01)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.load(raw, Loader=_StrictLoader) if raw.strip() else ""
    except _DuplicateKey as err:
        raise ConfigError(f"override {text!r}: duplicate key {err.key!r} in the value; keep one") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({err})") from None
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Set each `a.b.c=value` into the nested dict `data` (validation happens in from_dict)."""
    for text in overrides or []:
        path, value = parse_override(text)
        node = data
        for part, after in zip(path[:-1], path[1:]):
            if isinstance(node, list):
                node = node[_list_index(node, part, text)]
            else:
                if node.get(part) is None:   # a section the file left out: created, then validated
                    node[part] = {}
                node = node[part]
            if isinstance(node, list) and not after.isdigit():
                raise ConfigError(f"override {text!r}: {part!r} is not a section "
                                  f"(a list: name an item by position, e.g. {part}.0.{after})")
            if not isinstance(node, (dict, list)):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
        key = _list_index(node, path[-1], text) if isinstance(node, list) else path[-1]
        node[key] = value
    return data


def _list_index(items: list, part: str, text: str) -> int:
    """`stages.1.lr=...`: the position of an item in a list the experiment file already has."""
    if not part.isdigit() or int(part) >= len(items):
        raise ConfigError(f"override {text!r}: {part!r} is not an item of a list of {len(items)} "
                          f"(positions 0..{len(items) - 1})")
    return int(part)


def read_yaml(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"experiment file {path} not found; pass a YAML file such as recipes/004-a.yaml")
    try:
        data = yaml.load(path.read_text(), Loader=_StrictLoader) or {}
    except _DuplicateKey as err:
        raise ConfigError(f"{path}, line {err.line}: duplicate key {err.key!r} (first on line {err.first_line}); "
                          "YAML would silently keep only the last value: delete one of them") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return data
