"""Building the model of an experiment: create from the registry, initialize, load weights."""

from __future__ import annotations

from pathlib import Path

from torch import nn

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
                             "is built (cnnlab.train.sources.resolve_pretrained)")
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
        for candidate in (path / "model.safetensors", path / "checkpoints" / "best.safetensors"):
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
        config = folder / "config.yaml"
        if config.is_file():
            try:
                import yaml

                name = (yaml.safe_load(config.read_text()) or {}).get("model", {}).get("name")
            except Exception:  # an unreadable config only costs the hint
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
