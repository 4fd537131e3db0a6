"""Source runs for transfer learning and distillation: `model.pretrained: {recipe: recipes/<id>.yaml}`
and `distill.teacher: {recipe: ...}`.

The source is the newest finished run of that recipe in the runs folder: a run whose config has
the recipe's name and whose summary says it finished, with its final weights. `resolve_sources`
turns both into the run folders they name before training starts, so config.yaml records the
exact source run (a resume, or a reader, gets the same one after the recipe has newer runs).
"""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path
from typing import Optional

from cnnlab.runfolder import WEIGHTS, RunFolderError, find_runs, finished_summary, read_config_dict
from cnnlab.train.experiment import ExperimentConfig, SourceRecipe, load_experiment


class SourceMissing(FileNotFoundError):
    """The source recipe has no finished run yet; the message holds the command that trains it."""


def newest_finished_run(recipe: str | Path, runs_dir: str | Path) -> Optional[Path]:
    """The newest finished run of `recipe` under `runs_dir` (folder names start with a timestamp)."""
    name = load_experiment(recipe).name
    found = []
    for run in find_runs(runs_dir):
        try:
            if read_config_dict(run).get("name") != name:
                continue
            if finished_summary(run) is not None:
                found.append(run)
        except RunFolderError:
            continue   # a damaged run is never a source
    return max(found, key=lambda r: (r.name, r.stat().st_mtime)) if found else None


def resolve_pretrained(pretrained, runs_dir: str | Path, key: str = "model.pretrained"):
    """A {recipe: ...} source becomes the path of its newest finished run; anything else is returned as is.
    `key` names the config entry in messages (model.pretrained, distill.teacher)."""
    if not isinstance(pretrained, SourceRecipe):
        return pretrained
    recipe = Path(pretrained.recipe)
    if not recipe.is_file():
        raise FileNotFoundError(f"{key}.recipe: {recipe} does not exist; give the path of a recipe "
                                f"YAML, e.g. recipes/000-c-source.yaml")
    run = newest_finished_run(recipe, runs_dir)
    if run is None:
        raise SourceMissing(f"{key}: no finished run of {recipe} under {runs_dir}. Train the source "
                            f"first: cnnlab train {shlex.quote(str(recipe))} --runs-dir {shlex.quote(str(runs_dir))} "
                            f"(or add --with-sources to train it now)")
    return str(run)


def resolve_sources(cfg: ExperimentConfig, runs_dir: str | Path) -> ExperimentConfig:
    """`cfg` with `model.pretrained` and `distill.teacher` given as {recipe: ...} replaced by the run
    folders they resolve to (SourceMissing when a recipe has no finished run); the caller's
    config is left as it was."""
    pretrained = resolve_pretrained(cfg.model.pretrained, runs_dir)
    if isinstance(pretrained, str) and Path(pretrained).is_dir() and (Path(pretrained) / WEIGHTS).is_file():
        from cnnlab.runs import load_run

        load_run(pretrained).require("source")   # NotMeaningful, in the source task's words
    teacher = resolve_pretrained(cfg.distill.teacher, runs_dir, key="distill.teacher")
    if pretrained is cfg.model.pretrained and teacher is cfg.distill.teacher:
        return cfg
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pretrained=pretrained),
                               distill=dataclasses.replace(cfg.distill, teacher=teacher))


__all__ = ["SourceMissing", "newest_finished_run", "resolve_pretrained", "resolve_sources"]
