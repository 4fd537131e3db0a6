"""Building the model of an experiment: create from the registry, initialize, load weights."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cnnlab.data import DataError, Normalizer
from cnnlab.runfolder import BEST_WEIGHTS, CONFIG, WEIGHTS, RunFolderError, read_config_dict
from cnnlab.train.experiment import ModelConfig
from cnnlab.models import LoadReport, create_model, init_weights, load_imagenet, load_pretrained
from cnnlab.models.head import resize_inputs, with_new_head
from cnnlab.train.checkpoint import CheckpointError


def build_model(cfg: ModelConfig, num_classes: int, in_chans: int = 3, log=None, input_size: int = 32) -> nn.Module:
    """The experiment's model: created, initialized, pretrained weights loaded (strictly except the
    final layer), then the declared new head, if any, put on its features. `log` gets the one-line
    report of pretrained weights (what loaded, what is new). `model.pretrained` must be a path, a
    URL or imagenet here: a {recipe: ...} source is resolved to its run folder by the caller."""
    kwargs = dict(cfg.kwargs)
    model_classes = kwargs.pop("num_classes", num_classes)
    if model_classes == 1 and num_classes != 2:
        raise ValueError(f"model.kwargs.num_classes=1 (a binary sigmoid head) needs a 2-class dataset, "
                         f"this one has {num_classes} classes")
    if model_classes not in (1, num_classes):
        raise ValueError(f"model.kwargs.num_classes={model_classes} but the dataset has {num_classes} classes: "
                         f"labels would be out of range; drop the key to use the dataset's count")
    model = create_model(cfg.name, num_classes=model_classes, in_chans=in_chans, **kwargs)
    if cfg.init != "default":
        init_weights(model, cfg.init, cfg.init_std)
    if cfg.pretrained:
        if not isinstance(cfg.pretrained, str):
            raise ValueError("model.pretrained {recipe: ...} must be resolved to a run folder before the model "
                             "is built (cnnlab.transfer.resolve_sources; cnnlab.run_experiment does it)")
        report = load_pretrained_weights(model, cfg.pretrained, cfg.name)
        if log is not None:
            log(report.summary())
    if cfg.head is not None:
        model = with_new_head(model, num_classes=model_classes, hidden=list(cfg.head.hidden),
                              batch_norm=cfg.head.batch_norm, dropout=cfg.head.dropout,
                              input_size=cfg.resize_to or input_size, in_chans=in_chans)
    if cfg.resize_to:   # on the outermost module, so the new head's forward sees the resized input too
        model = resize_inputs(model, cfg.resize_to)
    return model


def _weights_file(source: str) -> Path:
    path = Path(source)
    if path.is_dir():
        for candidate in (path / WEIGHTS, path / BEST_WEIGHTS):
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"model.pretrained={source!r}: the folder has no model.safetensors; "
                              f"point it at a finished cnnlab run folder or a .safetensors file")
    if path.suffix == ".safetensors":
        return path
    raise CheckpointError(f"model.pretrained={source!r}: expected a cnnlab run folder or a .safetensors file")


def _source_model(weights: Path) -> str | None:
    """The model name in the config.yaml of the run folder holding ``weights``, if any."""
    for folder in (weights.parent, weights.parent.parent):
        if (folder / CONFIG).is_file():
            try:
                name = (read_config_dict(folder).get("model") or {}).get("name")
            except (RunFolderError, AttributeError):  # an unreadable config only costs the hint
                return None
            return f"a {name} run" if isinstance(name, str) else None
    return None


def load_pretrained_weights(model: nn.Module, source: str, model_name: str) -> LoadReport:
    """`imagenet` (the publisher's checkpoint for this model), a URL, a run folder or a weights file.

    Loaded strictly except the classification head: head tensors of another shape (a new
    class count) keep their fresh initialization and the returned report's one-line
    ``summary()`` says so (it is also logged); a source of another architecture raises
    ``ArchitectureMismatchError`` (a ValueError) before any tensor is copied, and an
    unreadable weights file ``PretrainedFileError`` naming the file.
    """
    if source == "imagenet":
        return load_imagenet(model, model_name)
    if source.startswith(("http://", "https://")):
        return load_pretrained(model, source, progress=True, model_name=model_name)
    weights = _weights_file(source)
    return load_pretrained(model, str(weights), model_name=model_name, source_model=_source_model(weights))


# 5,000 images: airbench's choice (about 4.8M 2x2 patches at 32x32, for a 12x12 covariance); not tuned here.
DATA_INIT_IMAGES = 5000


def init_from_data(model: nn.Module, train_images, normalizer, n: int = DATA_INIT_IMAGES) -> None:
    """Give every module that defines ``init_from_data(images)`` (e.g. the airbench whitening layer)
    the first ``n`` normalized training images, before the first step."""
    fitters = [m for m in model.modules() if callable(getattr(m, "init_from_data", None))]
    if not fitters:
        return
    images = normalizer(train_images[:n])
    for module in fitters:
        module.init_from_data(images)


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
        from cnnlab.train.rundir import saved_normalizer

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
