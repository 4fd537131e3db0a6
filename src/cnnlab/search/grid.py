"""A sweep's grid: axes from `--grid key=v1,v2` or a spec file, expanded to override lists.

An axis sets one key, or several keys to the same value when joined with ``+``
(``model.kwargs.dropout1+model.kwargs.dropout2=0.5,0.2``: dropout after fc1 and fc2 together).
Values are read as YAML, as ``-o`` overrides are: ``128`` is an int, ``adam`` a string,
``[0.9,0.99]`` a list (commas inside brackets or quotes do not split values).
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

import yaml

from cnnlab.config import ConfigError, parse_override


@dataclass(frozen=True)
class Axis:
    keys: tuple[str, ...]     # dotted config keys this axis sets (all to the same value)
    values: tuple[Any, ...]   # in the order given

    @property
    def name(self) -> str:
        return "+".join(self.keys)


def split_values(text: str) -> list[str]:
    """'128,64' -> ['128', '64']; '[1,2],[3,4]' -> ['[1,2]', '[3,4]'] (top-level commas only)."""
    parts, depth, quote, current = [], 0, "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    parts.append(current)
    return [p.strip() for p in parts]


def _check_keys(name: str, where: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in name.split("+"))
    if any(not k or any(not part for part in k.split(".")) for k in keys):
        raise ValueError(f"{where}: {name!r} is not a config key; write key.sub=v1,v2 (e.g. optimizer.lr=0.1,0.01)")
    if "seed" in keys:
        raise ValueError(f"{where}: seed is not a grid axis; use --seeds N (seeds seed, seed+1, ...)")
    return keys


def _check_values(name: str, values: list[Any], where: str) -> tuple[Any, ...]:
    if not values:
        raise ValueError(f"{where}: {name} has no values; give at least one, e.g. {name}=v1,v2")
    encoded = [json.dumps(v, sort_keys=True, default=str) for v in values]
    if len(set(encoded)) != len(encoded):
        raise ValueError(f"{where}: {name} lists a value twice ({values}); each value once")
    return tuple(values)


def parse_grid_option(text: str) -> Axis:
    """One `--grid key=v1,v2[,...]` option -> an Axis."""
    where = f"--grid {text}"
    if "=" not in text:
        raise ValueError(f"{where}: write key=v1,v2 (e.g. --grid batch_size=128,64)")
    name, raw = text.split("=", 1)
    keys = _check_keys(name.strip(), where)
    values = []
    for piece in split_values(raw):
        if not piece:
            raise ValueError(f"{where}: an empty value; separate values with single commas")
        try:
            values.append(parse_override(f"x={piece}")[1])
        except ConfigError as err:
            raise ValueError(f"{where}: value {piece!r} is not valid YAML ({err})") from None
    return Axis(keys, _check_values(name, values, where))


def axes_from_mapping(grid: Any, where: str) -> list[Axis]:
    """A spec file's `grid:` mapping {key: [v1, v2], ...} -> axes, in file order."""
    if not isinstance(grid, dict):
        raise ValueError(f"{where}: grid must be a mapping of key: [values], e.g. {{batch_size: [128, 64]}}")
    axes = []
    for name, values in grid.items():
        if not isinstance(values, list):
            raise ValueError(f"{where}: grid.{name} must be a list of values, e.g. [128, 64]; got {values!r}")
        axes.append(Axis(_check_keys(str(name), where), _check_values(str(name), values, where)))
    return axes


def merge_axes(base: list[Axis], extra: list[Axis]) -> list[Axis]:
    """Axes of a spec file, then command-line axes: one with the same keys replaces it."""
    merged = {axis.keys: axis for axis in base}
    for axis in extra:
        merged[axis.keys] = axis
    taken: dict[str, str] = {}
    for axis in merged.values():
        for key in axis.keys:
            if key in taken:
                raise ValueError(f"--grid: {key} is set by two axes ({taken[key]} and {axis.name}); keep one")
            taken[key] = axis.name
    return list(merged.values())


def format_value(value: Any) -> str:
    """A value as an override writes it, read back as the same value (YAML): 0.5, adam, [1, 2]."""
    if isinstance(value, str):
        try:
            if yaml.safe_load(value) == value and "," not in value and "\n" not in value:
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value)


def expand(axes: list[Axis]) -> list[list[str]]:
    """The cartesian product, first axis slowest: one override list per grid point."""
    points = []
    for combo in itertools.product(*(axis.values for axis in axes)):
        points.append([f"{key}={format_value(value)}" for axis, value in zip(axes, combo) for key in axis.keys])
    return points


def grid_to_mapping(axes: list[Axis]) -> dict[str, list[Any]]:
    """Axes back to the `grid:` mapping sweep.yaml stores."""
    return {axis.name: list(axis.values) for axis in axes}


__all__ = ["Axis", "parse_grid_option", "axes_from_mapping", "merge_axes", "expand", "format_value",
           "grid_to_mapping", "split_values"]
