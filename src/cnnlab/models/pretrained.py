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


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did: tensors loaded, skipped (with why), and missing."""

    loaded: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


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

        return _unwrap(load_file(str(path), device="cpu"), source)
    return _unwrap(torch.load(path, map_location="cpu", weights_only=True), source)


def load_pretrained(model: nn.Module, source: str, hash: str | None = None, model_dir: str | os.PathLike | None = None,
                    progress: bool = False) -> LoadReport:
    """Copy matching tensors of ``source`` (URL or file) into ``model``.

    Tensors whose shape differs (typically the classification head) are skipped
    with a logged message; ``ValueError`` if no tensor matches at all (wrong model).
    Returns a :class:`LoadReport`.
    """
    state = fetch_state_dict(source, hash, model_dir, progress)
    own = model.state_dict()
    report = LoadReport()
    to_load: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if name not in own:
            report.skipped.append((name, "not in model"))
        elif own[name].shape != tensor.shape:
            report.skipped.append((name, f"shape {tuple(tensor.shape)} != model {tuple(own[name].shape)}"))
        else:
            to_load[name] = tensor
    if not to_load:
        raise ValueError(f"no tensor of {source} matches {type(model).__name__} by name and shape; "
                         "is it the checkpoint of another architecture?")
    model.load_state_dict(to_load, strict=False)
    report.loaded = sorted(to_load)
    # num_batches_tracked is a counter older checkpoints lack; not a missing weight.
    report.missing = sorted(k for k in own if k not in to_load and not k.endswith("num_batches_tracked"))
    for name, why in report.skipped:
        log.warning("pretrained %s: skipped %s (%s)", source, name, why)
    log.info("pretrained %s: loaded %d tensors, %d missing", source, len(report.loaded), len(report.missing))
    return report


def load_imagenet(model: nn.Module, name: str, model_dir: str | os.PathLike | None = None,
                  progress: bool = True) -> LoadReport:
    """Load the publisher's ImageNet weights for registered model ``name``."""
    if name not in IMAGENET_URLS:
        raise ValueError(f"no ImageNet checkpoint for {name!r}; available: {', '.join(sorted(IMAGENET_URLS))}")
    return load_pretrained(model, IMAGENET_URLS[name], model_dir=model_dir, progress=progress)
