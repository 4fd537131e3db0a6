"""The sweep folder and its spec, sweep.yaml: which experiment, which grid, which seeds, and per
point the overrides and the run folders.

    runs/sweep-002-a-20261122-101500/
      experiment.yaml   the resolved base experiment (a resume never depends on the recipe file again)
      sweep.yaml        experiment, overrides, grid, seeds, fingerprint, points: [{id, overrides, runs}]
      p00/ p01/ ...     one folder per grid point holding its run folder(s) (one per seed)
      sweep.md, sweep.png   the results (written after each pass)

The same sweep command run again finds its folder by the fingerprint (the resolved base config,
the grid and the seeds) and continues it; a changed recipe or grid starts a new sweep folder.
sweep.yaml is written whole and atomically, under a lock when run folders are recorded, so two
sweep processes on one folder never lose each other's entries.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import yaml

from cnnlab.atomic import make_folder, write_text_atomically
from cnnlab.config import read_yaml, to_dict
from cnnlab.search.grid import Axis, axes_from_mapping, expand, grid_to_mapping, merge_axes, parse_grid_option
from cnnlab.train.experiment import ExperimentConfig, experiment_to_yaml, load_experiment

SPEC = "sweep.yaml"
BASE = "experiment.yaml"
SPEC_FILE_KEYS = ("experiment", "grid", "seeds", "overrides", "name", "description")


@dataclass
class Sweep:
    folder: Path
    spec: dict = field(repr=False)   # sweep.yaml as a dict

    @property
    def points(self) -> list[dict]:
        return self.spec["points"]

    @property
    def seeds(self) -> int:
        return int(self.spec["seeds"])

    @property
    def axes(self) -> list[Axis]:
        return axes_from_mapping(self.spec["grid"], str(self.folder / SPEC))

    def base_seed(self) -> int:
        return load_experiment(self.folder / BASE).seed

    def point_config(self, point: dict, seed: int) -> ExperimentConfig:
        """The experiment of one grid point and seed: the saved base plus the point's overrides."""
        return load_experiment(self.folder / BASE, list(point["overrides"]) + [f"seed={seed}"])


def read_sweep_spec_file(path: Path) -> Optional[dict]:
    """A sweep spec file (a YAML with a top-level `grid:`) as a dict with the experiment path made
    relative to the current folder; None for an ordinary experiment file."""
    data = read_yaml(path)
    if "grid" not in data:
        return None
    unknown = sorted(set(data) - set(SPEC_FILE_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)} in a sweep spec; allowed: {', '.join(SPEC_FILE_KEYS)}")
    if not isinstance(data.get("experiment"), str):
        raise ValueError(f"{path}: a sweep spec needs `experiment: PATH` (the experiment YAML, relative to this file)")
    data["experiment"] = str(Path(path).parent / data["experiment"])
    return data


def _fingerprint(base: ExperimentConfig, grid: dict, seeds: int) -> str:
    text = json.dumps({"base": to_dict(base), "grid": grid, "seeds": seeds}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_sweep(experiment: str | Path, grid_options: list[str], overrides: list[str], seeds: Optional[int],
               runs_dir: str | Path, name: Optional[str] = None) -> tuple[Sweep, bool]:
    """The sweep folder of this command: an existing one with the same fingerprint, else a new one.

    Returns (sweep, created). Every point's config is checked before anything is written, so a bad
    grid value fails at once, naming the key.
    """
    experiment = Path(experiment)
    spec_file = read_sweep_spec_file(experiment)
    axes: list[Axis] = []
    if spec_file is not None:
        axes = axes_from_mapping(spec_file["grid"], str(experiment))
        overrides = list(spec_file.get("overrides") or []) + list(overrides)
        seeds = seeds if seeds is not None else int(spec_file.get("seeds") or 1)
        name = name or spec_file.get("name")
        experiment = Path(spec_file["experiment"])
    axes = merge_axes(axes, [parse_grid_option(text) for text in grid_options])
    seeds = 1 if seeds is None else seeds
    if seeds < 1:
        raise ValueError(f"--seeds {seeds}: give 1 or more")
    base = load_experiment(experiment, overrides)
    points = expand(axes)
    for point_overrides in points:   # config errors (unknown key, wrong type) before any folder exists
        load_experiment(experiment, list(overrides) + point_overrides)
    grid = grid_to_mapping(axes)
    fingerprint = _fingerprint(base, grid, seeds)

    runs_dir = Path(runs_dir)
    if name:
        if "/" in name or name in (".", ".."):
            raise ValueError(f"--name {name!r}: give a folder name without '/'")
        folder = runs_dir / name
        if (folder / SPEC).is_file():
            found = open_sweep(folder)
            if found.spec.get("fingerprint") != fingerprint:
                raise ValueError(f"{folder} holds another sweep (other experiment config, grid or seeds); "
                                 f"choose another --name, or continue that one with: cnnlab sweep --resume {folder}")
            return found, False
    else:
        same = [p.parent for p in sorted(runs_dir.glob(f"sweep-{base.name}-*/{SPEC}"))
                if _spec_fingerprint(p) == fingerprint]
        if same:
            return open_sweep(same[-1]), False
        folder = _new_folder(runs_dir, f"sweep-{base.name}")
    make_folder(folder)
    write_text_atomically(folder / BASE, experiment_to_yaml(base))
    spec = {"experiment": str(experiment), "overrides": list(overrides), "grid": grid, "seeds": seeds,
            "fingerprint": fingerprint,
            "points": [{"id": _point_id(i, len(points)), "overrides": o, "runs": []} for i, o in enumerate(points)]}
    write_text_atomically(folder / SPEC, _dump(spec))   # last: a folder with sweep.yaml is complete
    return Sweep(folder, spec), True


def _point_id(index: int, count: int) -> str:
    return f"p{index:0{max(2, len(str(count - 1)))}d}"


def _new_folder(runs_dir: Path, base: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        folder = runs_dir / (f"{base}-{stamp}" if attempt == 1 else f"{base}-{stamp}-{attempt}")
        if not folder.exists():
            return folder
    raise RuntimeError(f"could not find a free sweep folder name under {runs_dir}")


def _spec_fingerprint(path: Path) -> Optional[str]:
    try:
        return (yaml.safe_load(path.read_text()) or {}).get("fingerprint")
    except (OSError, yaml.YAMLError, AttributeError):
        return None


def _dump(spec: dict) -> str:
    header = ("# cnnlab sweep: the grid's points and their run folders (relative to this folder).\n"
              "# Continue with: cnnlab sweep --resume <this folder>\n")
    return header + yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=120)


def open_sweep(folder: str | Path) -> Sweep:
    """A sweep folder made by plan_sweep; a folder without sweep.yaml is refused with the fix."""
    folder = Path(folder)
    path = folder / SPEC
    if not path.is_file() or not (folder / BASE).is_file():
        raise ValueError(f"{folder} is not a sweep folder (no {SPEC} or {BASE}); start one with: "
                         f"cnnlab sweep EXPERIMENT.yaml --grid key=v1,v2")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML ({err}); restore it or start the sweep again") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("points"), list):
        raise ValueError(f"{path} has no `points:` list; restore it or start the sweep again")
    return Sweep(folder, spec)


@contextlib.contextmanager
def locked(path: Path, blocking: bool = True) -> Iterator[bool]:
    """An flock on `path` (released when the process ends, SIGKILL included); yields False if
    `blocking` is off and another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True


def record_run(sweep: Sweep, point_id: str, seed: int, run_dir: Path) -> None:
    """Note a point's run folder in sweep.yaml (re-read under the lock: other processes may have written)."""
    with locked(sweep.folder / ".sweep.lock"):
        spec = open_sweep(sweep.folder).spec
        rel = str(Path(run_dir).resolve().relative_to(sweep.folder.resolve()))
        for point in spec["points"]:
            if point["id"] == point_id:
                runs = [r for r in point.get("runs") or [] if r.get("seed") != seed]
                point["runs"] = sorted(runs + [{"seed": seed, "folder": rel}], key=lambda r: r["seed"])
        write_text_atomically(sweep.folder / SPEC, _dump(spec))
        sweep.spec = spec


def seeds_of(sweep: Sweep) -> list[int]:
    first = sweep.base_seed()
    return [first + i for i in range(sweep.seeds)]


def point_label(point: dict) -> str:
    return ", ".join(point["overrides"]) or "(base)"


__all__ = ["Sweep", "plan_sweep", "open_sweep", "record_run", "read_sweep_spec_file", "locked", "seeds_of",
           "point_label", "SPEC", "BASE"]
