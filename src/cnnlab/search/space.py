"""A search space declared in YAML, read and checked; one trial's choices -> an experiment config.

    name: cifar10-50k                   # the study's default name
    experiment: ../004-a.yaml           # optional: a base experiment file (relative to this file)
    base: {data: {name: cifar10}, epochs: 30, ...}   # fixed keys of every trial (over `experiment`)
    objective: {metric: val_acc}        # val_acc (maximized) or val_loss (minimized); never test_*
    limits: {max_params: 50000, num_classes: null}   # checked before a trial trains
    sampler: {name: tpe, seed: 0}       # tpe (default) | random
    pruner: {name: median, n_startup_trials: 5, n_warmup_steps: 2}   # median | hyperband | none
    architecture:                       # optional: the model as a declared network (architecture.py)
      block: [plain, residual, inception, dense]
      stages: {low: 2, high: 4}
      width: {low: 16, high: 64, step: 8}
    params:                             # any experiment key, dotted as with -o
      optimizer.lr: {low: 1.0e-4, high: 1.0e-1, log: true}
      augment.hflip: [true, false]

A value is a distribution: a list is a choice among its items, {low, high} a range (integers when
both ends are integers; `log: true` samples the exponent; `step` a grid), anything else a fixed value.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from cnnlab.config import ConfigError, read_yaml
from cnnlab.search import architecture
from cnnlab.train.experiment import ExperimentConfig, experiment_from_dict

SPACE_KEYS = ("name", "description", "experiment", "base", "objective", "limits", "sampler", "pruner",
              "architecture", "params")
METRICS = {"val_acc": "maximize", "val_loss": "minimize"}
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")
ARCH = "arch."   # prefix of architecture choices among a trial's parameters


class SpaceError(ValueError):
    """A search-space file that cannot be used; the message names the key and the fix."""


@dataclass(frozen=True)
class Dist:
    """One searched value: kind is choice, int, float or fixed."""

    kind: str
    choices: tuple = ()        # choice: the items (non-scalars are offered JSON-encoded)
    low: float = 0
    high: float = 0
    log: bool = False
    step: Optional[float] = None
    value: Any = None          # fixed


def _number(value: Any, where: str) -> float | int:
    if isinstance(value, str):   # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpaceError(f"{where}: {value!r} is not a number")
    return value


def parse_dist(spec: Any, where: str) -> Dist:
    if isinstance(spec, list):
        if not spec:
            raise SpaceError(f"{where}: an empty list of choices; give at least one value")
        return Dist("choice", choices=tuple(spec))
    if isinstance(spec, dict) and ("low" in spec or "high" in spec):
        extra = set(spec) - {"low", "high", "log", "step"}
        if extra or "low" not in spec or "high" not in spec:
            raise SpaceError(f"{where}: a range is {{low: A, high: B}} with optional log: true or step: S; "
                             f"got keys {sorted(spec)}")
        low, high = _number(spec["low"], f"{where}.low"), _number(spec["high"], f"{where}.high")
        step = None if spec.get("step") is None else _number(spec["step"], f"{where}.step")
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise SpaceError(f"{where}.log: use true or false, got {log!r}")
        if not low <= high:
            raise SpaceError(f"{where}: low {low} is above high {high}")
        if log and (low <= 0 or step is not None):
            raise SpaceError(f"{where}: log: true needs low > 0 and no step")
        is_int = all(isinstance(v, int) for v in (spec["low"], spec["high"])) and (step is None or isinstance(step, int))
        return Dist("int" if is_int else "float", low=low, high=high, log=log, step=step)
    return Dist("fixed", value=spec)


def _encode(item: Any) -> Any:
    """Optuna offers None, bools, numbers and strings; a list choice (betas, milestones) goes as JSON text."""
    return item if item is None or isinstance(item, (bool, int, float, str)) else json.dumps(item)


def suggest(trial: Any, name: str, dist: Dist) -> Any:
    """The trial's value of `name` (an Optuna trial, or anything with its suggest_* methods)."""
    if dist.kind == "fixed":
        return dist.value
    if dist.kind == "choice":
        encoded = [_encode(c) for c in dist.choices]
        picked = trial.suggest_categorical(name, encoded)
        return dist.choices[encoded.index(picked)]
    if dist.kind == "int":
        return trial.suggest_int(name, int(dist.low), int(dist.high), step=int(dist.step or 1), log=dist.log)
    return trial.suggest_float(name, float(dist.low), float(dist.high), step=dist.step, log=dist.log)


class FirstChoices:
    """A stand-in trial that takes each first choice / lower end: to check a space without Optuna."""

    params: dict

    def __init__(self) -> None:
        self.params = {}

    def suggest_categorical(self, name, choices):
        return self.params.setdefault(name, choices[0])

    def suggest_int(self, name, low, high, step=1, log=False):
        return self.params.setdefault(name, low)

    def suggest_float(self, name, low, high, step=None, log=False):
        return self.params.setdefault(name, low)


@dataclass
class Space:
    name: str
    path: Path
    base: dict                                  # the fixed experiment (a config dict)
    metric: str = "val_acc"
    max_params: Optional[int] = None
    num_classes: Optional[int] = None
    sampler: dict = field(default_factory=lambda: {"name": "tpe"})
    pruner: dict = field(default_factory=lambda: {"name": "median"})
    architecture: dict[str, Dist] = field(default_factory=dict)   # empty: the base's model is used
    params: dict[str, Dist] = field(default_factory=dict)
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def direction(self) -> str:
        return METRICS[self.metric]

    def fingerprint(self) -> str:
        """What must not change while a study runs: the base, the distributions, the objective."""
        keep = {k: self.raw.get(k) for k in ("base", "experiment", "objective", "architecture", "params")}
        keep["base_resolved"] = self.base
        return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def config_dict(self, trial: Any, name: str) -> dict:
        """The experiment of one trial as a config dict (validated by ``config``)."""
        data = copy.deepcopy(self.base)
        data["name"] = name
        if self.architecture:
            choices = {}
            block = suggest(trial, ARCH + "block", self.architecture["block"])
            for key, dist in self.architecture.items():
                if key == "block" or block not in architecture.ONLY_FOR.get(key, architecture.BLOCKS):
                    continue
                choices[key] = suggest(trial, ARCH + key, dist)
            model = dict(data.get("model") or {})
            image_size = (data.get("data") or {}).get("image_size", 32)
            model.update(name="sequential", kwargs={"layers": architecture.layers_for({**choices, "block": block}),
                                                    "input_size": image_size})
            model.pop("pretrained", None)
            data["model"] = model
        for key, dist in self.params.items():
            _set(data, key, suggest(trial, key, dist))
        return data

    def config(self, trial: Any, name: str) -> ExperimentConfig:
        return experiment_from_dict(self.config_dict(trial, name))


def _set(data: dict, dotted: str, value: Any) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise SpaceError(f"params.{dotted}: {part!r} is not a section of the experiment")
        node = child
    node[parts[-1]] = value


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _section(data: dict, key: str, path: Path) -> dict:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise SpaceError(f"{path}: `{key}:` must be a mapping, got {value!r}")
    return value


def _options(section: dict, key: str, allowed: tuple[str, ...], default: str, path: Path) -> dict:
    options = {"name": default, **section}
    if options["name"] not in allowed:
        raise SpaceError(f"{path}: {key}.name {options['name']!r}: use one of {', '.join(allowed)}")
    return options


def load_space(path: str | Path) -> Space:
    """Read and check a space file; one trial's config (first choices) is built to catch wrong keys now."""
    path = Path(path)
    try:
        raw = read_yaml(path)
    except ConfigError as err:
        raise SpaceError(str(err)) from None
    unknown = [k for k in raw if k not in SPACE_KEYS]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), SPACE_KEYS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SpaceError(f"{path}: unknown key {unknown[0]!r}.{hint} Allowed keys: {', '.join(SPACE_KEYS)}")
    base: dict = {}
    if raw.get("experiment") is not None:
        base = read_yaml(path.parent / str(raw["experiment"]))
    base = _merge(base, _section(raw, "base", path))
    objective = _section(raw, "objective", path)
    metric = objective.get("metric", "val_acc")
    if metric not in METRICS or set(objective) - {"metric"}:
        raise SpaceError(f"{path}: objective.metric {metric!r}: use val_acc or val_loss (a search never "
                         f"looks at the test set: choose on validation, report test once at the end)")
    limits = _section(raw, "limits", path)
    if set(limits) - {"max_params", "num_classes"}:
        raise SpaceError(f"{path}: limits takes max_params and num_classes, got {sorted(limits)}")
    for key in ("max_params", "num_classes"):
        value = limits.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise SpaceError(f"{path}: limits.{key} must be a positive integer, got {value!r}")
    arch_raw = _section(raw, "architecture", path)
    try:
        architecture.check_keys(arch_raw, f"{path}: architecture")
    except ValueError as err:
        raise SpaceError(str(err)) from None
    arch = ({key: parse_dist(arch_raw.get(key, default), f"architecture.{key}")
             for key, default in architecture.DEFAULTS.items()} if arch_raw else {})
    params = {str(k): parse_dist(v, f"params.{k}") for k, v in _section(raw, "params", path).items()}
    if arch and any(k == "model" or k.startswith("model.") for k in params):
        raise SpaceError(f"{path}: params sets model keys while `architecture:` builds the model; keep one")
    space = Space(name=str(raw.get("name") or path.stem), path=path, base=base, metric=metric,
                  max_params=limits.get("max_params"), num_classes=limits.get("num_classes"),
                  sampler=_options(_section(raw, "sampler", path), "sampler", SAMPLERS, "tpe", path),
                  pruner=_options(_section(raw, "pruner", path), "pruner", PRUNERS, "median", path),
                  architecture=arch, params=params, raw=raw)
    try:
        data = space.config(FirstChoices(), f"{space.name}-check").data
    except ValueError as err:   # ConfigError, SpaceError, a bad architecture value
        raise SpaceError(f"{path}: {err}") from None
    if (data.name == "folder" and not data.folder_split[1]) or (data.name != "folder" and not data.val_size):
        raise SpaceError(f"{path}: trials are chosen on a validation split and this base has none; set "
                         f"base.data.val_size (e.g. 5000), or the middle part of data.folder_split for image folders")
    return space


__all__ = ["Space", "SpaceError", "Dist", "load_space", "parse_dist", "suggest", "FirstChoices", "ARCH", "METRICS"]
