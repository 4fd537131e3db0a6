"""Source networks for transfer learning: `model.pretrained: {recipe: recipes/<id>.yaml}`.

The source is the newest finished run of that recipe in the runs folder: a run whose config has
the recipe's name and whose summary says it finished, with its final weights.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

from cnnlab.runfolder import RunFolderError, find_runs, read_config_dict, read_summary
from cnnlab.train.experiment import SourceRecipe, load_experiment
from cnnlab.train.state import FINISHED


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
            summary = read_summary(run)
        except RunFolderError:
            continue   # a damaged run is never a source
        if summary and summary.get("status") in FINISHED and (run / "model.safetensors").is_file():
            found.append(run)
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
