"""Comparing a recipe (with overrides) to the config.yaml a recorded run saved: shared by the tests
that check recipes and docs/results.yaml's commands against the records under results/."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import yaml

from cnnlab import load_experiment
from cnnlab.train.experiment import experiment_to_yaml

# Keys that may differ: the run's identity and the per-run flags of its command.
PER_RUN_KEYS = ("name", "description", "seed", "threads")


def resolved_config(path: Path, overrides: Optional[list[str]] = None) -> dict:
    """Defaults -> the YAML file -> overrides, as a plain dict. A saved config.yaml is read back
    through the loader too: keys added since the run was made take their defaults, which are what
    that run trained with."""
    return yaml.safe_load(experiment_to_yaml(load_experiment(path, overrides)))


def differing_keys(ours: dict, saved: dict) -> dict:
    """Top-level keys (per-run ones aside) whose values differ: key -> (ours, saved)."""
    return {k: (ours.get(k), saved.get(k)) for k in sorted(set(ours) | set(saved))
            if k not in PER_RUN_KEYS and ours.get(k) != saved.get(k)}
