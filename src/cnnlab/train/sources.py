"""Source networks for transfer learning: `model.pretrained: {recipe: recipes/<id>.yaml}`.

The source is the newest finished run of that recipe in the runs folder: a run whose config has
the recipe's name and whose summary says it finished, with its final weights. With
`data.normalize: source` the target's inputs are normalized as the source's were.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

import torch

from cnnlab.data import DataError, Normalizer
from cnnlab.runfolder import RunFolderError, find_runs, read_config_dict, read_summary
from cnnlab.train.checkpoint import CheckpointError
from cnnlab.train.experiment import SourceRecipe, load_experiment
from cnnlab.train.rundir import saved_normalizer
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


def source_normalizer(pretrained, train_images: torch.Tensor) -> Normalizer:
    """`data.normalize: source`: the input statistics the source network trained with.

    `pretrained` is model.pretrained after resolve_pretrained: "imagenet" gives ImageNet's published
    mean/std; a run folder gives the statistics saved in it (normalization.json). A weights file or
    URL carries no statistics, so it is an error that names the choices. `train_images` (uint8
    N x C x H x W) only checks that the channel counts agree.
    """
    if pretrained is None:
        raise DataError("data.normalize: source uses the source network's statistics, and model.pretrained is not "
                        "set; set model.pretrained or choose data.normalize: per_channel")
    if pretrained == "imagenet":
        return Normalizer.fit("imagenet", train_images)
    run = Path(str(pretrained))
    if not run.is_dir():
        raise DataError(f"data.normalize: source needs a source run, and model.pretrained={str(pretrained)!r} is a "
                        f"weights file or URL, which carries no input statistics; use data.normalize: imagenet for "
                        f"ImageNet weights, else per_channel")
    try:
        saved = saved_normalizer(run)
    except (RunFolderError, CheckpointError) as err:
        raise DataError(f"data.normalize: source: {err}") from None
    if saved is None:
        raise DataError(f"data.normalize: source: the source run {run} saved no normalization.json nor checkpoint, "
                        f"so the statistics it trained with are unknown; retrain it, or choose data.normalize: "
                        f"per_channel")
    channels = train_images.shape[1]
    if saved.mean.numel() not in (1, channels):
        raise DataError(f"data.normalize: source: the source run {run} normalized {saved.mean.numel()} channels and "
                        f"these images have {channels}; choose data.normalize: per_channel")
    return saved
