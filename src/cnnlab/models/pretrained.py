"""Loading pretrained weights: publisher ImageNet checkpoints (hash-checked) or local files."""
from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

log = logging.getLogger("cnnlab.models")

# torchvision's ImageNet checkpoints; the 8-hex part of each file name is the
# sha256 prefix torch.hub checks. Parameter names of our models match these.
IMAGENET_URLS: dict[str, str] = {
    "vgg11": "https://download.pytorch.org/models/vgg11-8a719046.pth",
    "vgg11_bn": "https://download.pytorch.org/models/vgg11_bn-6002323d.pth",
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "vgg16_bn": "https://download.pytorch.org/models/vgg16_bn-6c64b313.pth",
    "vgg16_3block": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "vgg16_5block": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "alexnet": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "mobilenetv2": "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
}

_HASH = re.compile(r"^[0-9a-f]{6,64}$")


class PretrainedError(ValueError):
    """Pretrained weights that cannot be used: an unreadable file or another architecture."""


class PretrainedFileError(PretrainedError):
    """A weights file that cannot be read (truncated, corrupt, or not a weights file)."""


class ArchitectureMismatchError(PretrainedError):
    """The source's body tensors do not match the model's (missing, unexpected or reshaped)."""


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did.

    ``loaded``: model tensors copied from the source. ``skipped``: source tensors not copied,
    with why (a head of another shape; for ImageNet, publisher layers the model lacks).
    ``missing``: model tensors left as they were (the new head). ``new_head``: the head tensors
    that kept their fresh initialization; ``classes``: (source, model) class counts when the
    final layer changed size.
    """

    source: str = ""
    loaded: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    new_head: list[str] = field(default_factory=list)
    classes: tuple[int, int] | None = None

    def summary(self) -> str:
        """One line, e.g. ``pretrained x.safetensors: loaded 26 tensors; new head: classifier.weight,
        classifier.bias (10 -> 2 classes)``."""
        line = f"pretrained {self.source}: loaded {len(self.loaded)} tensors"
        unused = sum(1 for _, why in self.skipped if why == "not in model")
        if unused:
            line += f", {unused} unused"
        if self.new_head:
            change = f" ({self.classes[0]} -> {self.classes[1]} classes)" if self.classes else ""
            line += f"; new head: {', '.join(self.new_head)}{change}"
        return line


def classifier_layer(model: nn.Module) -> str | None:
    """Module name of the final classification layer (the layer that outputs the logits).

    Rule: the last ``nn.Linear`` in module order whose ``out_features`` equals
    ``model.num_classes`` (every registered model sets it, see :class:`ClassifierModel`); a
    model without ``num_classes`` uses its last ``nn.Linear``. Every registered model
    declares the layer that ``forward_head`` ends with last (``classifier``, ``classifier.6``,
    ``fc``, ``fc3``...). None if there is no such layer.
    """
    num_classes = getattr(model, "num_classes", None)
    found = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and (num_classes is None or module.out_features == num_classes):
            found = name
    return found


# Top-level submodules that belong to the head of the networks with ImageNet weights
# (torchvision names: VGG/AlexNet/MobileNetV2 ``classifier``, ResNet ``fc``; 004-e ``head``).
_HEAD_MODULES = ("classifier", "fc", "head", "pre_head")


def head_tensors(model: nn.Module, whole_head: bool = False) -> set[str]:
    """State-dict names of the classification head.

    Default: the tensors of :func:`classifier_layer` (the last layer). ``whole_head``: every
    tensor of the top-level submodule holding that layer and of those named ``classifier``,
    ``fc``, ``head`` or ``pre_head`` (the hidden dense layers before the logits too), which is
    what an ImageNet checkpoint replaces when a model keeps only its conv trunk.
    """
    last = classifier_layer(model)
    names = set(model.state_dict())
    if not whole_head:
        return {n for n in names if last is not None and n.startswith(last + ".")}
    tops = set(_HEAD_MODULES) | ({last.split(".")[0]} if last else set())
    return {n for n in names if n.split(".")[0] in tops}


def _unwrap(obj: object, source: str) -> dict[str, torch.Tensor]:
    # A cnnlab run checkpoint (or a Lightning/timm one) nests the weights under a key.
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "model_state", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{source} holds no state dict (name -> tensor); give a weights file or a run checkpoint")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_state_dict(source: str, hash_prefix: str | None = None, model_dir: str | os.PathLike | None = None,
                     progress: bool = False) -> dict[str, torch.Tensor]:
    """State dict from an http(s) URL (downloaded once into the torch.hub cache, sha256
    checked against ``hash_prefix`` or the prefix in the file name) or a local file."""
    if hash_prefix is not None and not _HASH.match(hash_prefix):
        raise ValueError(f"hash must be 6-64 lowercase hex digits of the file's sha256, got {hash_prefix!r}")
    if urlparse(source).scheme in ("http", "https"):
        name = os.path.basename(urlparse(source).path)
        if hash_prefix is not None:
            stem = name.split(".")[0]
            stem = re.sub(r"-[0-9a-f]{6,64}$", "", stem)
            name = f"{stem}-{hash_prefix}.pth"  # torch.hub checks the hex part of the file name
        elif not re.search(r"-([a-f0-9]*)\.", name):
            raise ValueError(f"cannot check {source}: its file name has no sha256 prefix; pass hash=...")
        obj = torch.hub.load_state_dict_from_url(source, model_dir=None if model_dir is None else str(model_dir),
                                                 map_location="cpu", progress=progress, check_hash=True,
                                                 file_name=name, weights_only=True)
        if hash_prefix is not None:
            # torch.hub checks only when it downloads; a cached file is checked here too.
            cache = Path(model_dir) if model_dir is not None else Path(torch.hub.get_dir()) / "checkpoints"
            actual = _sha256(cache / name)
            if not actual.startswith(hash_prefix):
                raise RuntimeError(f"{cache / name}: sha256 {actual[:16]}... does not start with {hash_prefix}; "
                                   "delete the file and download again")
        return _unwrap(obj, source)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights {source!r}: no such file and not an http(s) URL")
    if hash_prefix is not None and not _sha256(path).startswith(hash_prefix):
        raise RuntimeError(f"{path}: sha256 does not start with {hash_prefix}")
    if path.suffix == ".safetensors":  # the weights file of a cnnlab run
        from safetensors.torch import load_file

        try:
            obj = load_file(str(path), device="cpu")
        except Exception as err:  # SafetensorError (truncated header/data), OSError...
            raise PretrainedFileError(
                f"pretrained weights {path}: the .safetensors file is truncated or corrupt ({err}); "
                "copy it again, or re-run the training that wrote it") from None
        return _unwrap(obj, source)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated/foreign files
        raise PretrainedFileError(
            f"pretrained weights {path}: cannot read it as a PyTorch weights file, it is truncated, corrupt "
            f"or holds more than tensors ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            "copy it again, or re-run the training that wrote it") from None
    return _unwrap(obj, source)


def _shape(t: torch.Tensor) -> str:
    return str(tuple(t.shape))


def _is_counter(name: str) -> bool:
    # num_batches_tracked is a counter older checkpoints lack (and Keras-style BN omits): not a weight.
    return name.endswith("num_batches_tracked")


def load_pretrained(model: nn.Module, source: str, hash: str | None = None, model_dir: str | os.PathLike | None = None,
                    progress: bool = False, *, model_name: str | None = None, source_model: str | None = None,
                    imagenet: bool = False) -> LoadReport:
    """Copy the tensors of ``source`` (URL or file) into ``model``: strictly, except the head.

    The head is found through the model interface (see :func:`head_tensors`): by default
    the final classification layer. Head tensors of another shape (another class count), or
    absent from the source, keep their fresh initialization and are reported. Every other
    tensor must match by name and shape, both ways: anything missing, unexpected or
    reshaped raises :class:`ArchitectureMismatchError` (a ``ValueError``) naming ``source``,
    the model (``model_name``, else its class) and the first mismatches, before any tensor
    is copied, so a failure leaves ``model`` unchanged.

    ``imagenet=True`` (publisher checkpoints, :func:`load_imagenet`): the head is the whole
    ``classifier``/``fc``/``head`` part (hidden dense layers too, as our 32x32 heads differ)
    and publisher tensors the model lacks (a trunk cut after block 3) are ignored; every
    trunk tensor of the model must still be in the checkpoint with the same shape.
    Returns a :class:`LoadReport`; its one-line :meth:`LoadReport.summary` is logged.
    """
    state = fetch_state_dict(source, hash, model_dir, progress)
    own = model.state_dict()
    head = head_tensors(model, whole_head=imagenet)
    report = LoadReport(source=source)
    to_load: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    reshaped: list[str] = []
    for name, tensor in state.items():
        if name not in own:
            if imagenet or _is_counter(name):
                report.skipped.append((name, "not in model"))
            else:
                unexpected.append(f"{name} {_shape(tensor)}")
        elif own[name].shape != tensor.shape:
            if name in head:
                report.skipped.append((name, f"shape {_shape(tensor)} != model {_shape(own[name])}"))
            else:
                reshaped.append(f"{name}: source {_shape(tensor)} != model {_shape(own[name])}")
        else:
            to_load[name] = tensor
    missing_body = [f"{n} {_shape(t)}" for n, t in own.items()
                    if n not in state and n not in head and not _is_counter(n)]
    target = model_name or type(model).__name__
    if missing_body or unexpected or reshaped:
        parts = []
        for what, items in (("missing from the source", missing_body), ("not in the model", unexpected),
                            ("of another shape", reshaped)):
            if items:
                more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
                parts.append(f"{len(items)} {what}: {'; '.join(items[:3])}{more}")
        if imagenet:
            fix = (f"build {target} in its ImageNet configuration (the shapes of the publisher's network) "
                   "or drop model.pretrained")
        else:
            was = f" ({source_model})" if source_model else ""
            fix = f"the source is another architecture{was}; use a run of {target} or drop model.pretrained"
        raise ArchitectureMismatchError(
            f"pretrained weights {source} do not fit model {target} ({' | '.join(parts)}): {fix}")
    if not to_load:
        raise ArchitectureMismatchError(f"no tensor of {source} matches model {target}; "
                                        "the source is another architecture or holds only a head")
    model.load_state_dict(to_load, strict=False)
    report.loaded = sorted(to_load)
    report.missing = sorted(k for k in own if k not in to_load and not _is_counter(k))
    report.new_head = [k for k in own if k in head and k not in to_load and not _is_counter(k)]
    last = classifier_layer(model)
    weight = f"{last}.weight" if last else None
    if weight in report.new_head and weight in state and state[weight].ndim >= 1:
        report.classes = (int(state[weight].shape[0]), int(own[weight].shape[0]))
    # INFO, not WARNING: a new head is what fine-tuning asks for, and the caller shows report.summary()
    # itself (a warning also reached stderr through logging's last-resort handler: the line twice)
    log.info("%s", report.summary())
    return report


def load_imagenet(model: nn.Module, name: str, model_dir: str | os.PathLike | None = None,
                  progress: bool = True) -> LoadReport:
    """Load the publisher's ImageNet weights for registered model ``name``."""
    if name not in IMAGENET_URLS:
        raise ValueError(f"no ImageNet checkpoint for {name!r}; available: {', '.join(sorted(IMAGENET_URLS))}")
    return load_pretrained(model, IMAGENET_URLS[name], model_dir=model_dir, progress=progress, model_name=name,
                           imagenet=True)
