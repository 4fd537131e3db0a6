"""Pretrained loading through torch.hub from a file served on 127.0.0.1, and torchvision names."""
from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import torch

from cnnlab.models import create_model
from cnnlab.models.pretrained import load_pretrained


@pytest.fixture()
def served(tmp_path: Path):
    """A tiny cnn004 (3 classes) state dict served over HTTP, named with its sha256 prefix."""
    torch.manual_seed(1)
    source = create_model("cnn004", num_classes=3)
    raw = tmp_path / "raw.pth"
    torch.save(source.state_dict(), raw)
    sha = hashlib.sha256(raw.read_bytes()).hexdigest()
    www = tmp_path / "www"
    www.mkdir()
    name = f"cnn004tiny-{sha[:8]}.pth"
    raw.rename(www / name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield source, f"http://127.0.0.1:{server.server_address[1]}/{name}", sha, www
    server.shutdown()
    server.server_close()


def test_load_from_url_skips_head(served, tmp_path: Path) -> None:
    source, url, sha, _ = served
    target = create_model("cnn004", num_classes=10)
    report = load_pretrained(target, url, model_dir=tmp_path / "cache")
    assert torch.equal(target.features.conv1.weight, source.features.conv1.weight)
    assert torch.equal(target.features.bn4.running_var, source.features.bn4.running_var)
    skipped = dict(report.skipped)
    assert set(skipped) == {"classifier.weight", "classifier.bias"}
    assert "(3, 1600) != model (10, 1600)" in skipped["classifier.weight"]
    assert report.missing == ["classifier.bias", "classifier.weight"]
    # explicit full hash, file already cached: checked again
    load_pretrained(create_model("cnn004"), url, hash=sha[:16], model_dir=tmp_path / "cache2")


def test_wrong_hash_fails(served, tmp_path: Path) -> None:
    _, url, sha, _ = served
    wrong = ("0" if sha[0] != "0" else "1") + sha[1:8]
    with pytest.raises(RuntimeError, match="(?i)hash|sha256"):
        load_pretrained(create_model("cnn004"), url, hash=wrong, model_dir=tmp_path / "c")


def test_local_run_checkpoint_and_wrong_architecture(served, tmp_path: Path) -> None:
    source, _, _, _ = served
    ckpt = tmp_path / "run.pt"
    torch.save({"model": source.state_dict(), "epoch": 3}, ckpt)
    target = create_model("cnn004", num_classes=3)
    report = load_pretrained(target, str(ckpt))
    assert not report.skipped and not report.missing
    assert torch.equal(target.classifier.weight, source.classifier.weight)
    from safetensors.torch import save_file

    save_file(source.state_dict(), str(tmp_path / "model.safetensors"))
    again = create_model("cnn004", num_classes=3)
    assert not load_pretrained(again, str(tmp_path / "model.safetensors")).skipped
    assert torch.equal(again.features.conv4.weight, source.features.conv4.weight)
    with pytest.raises(ValueError, match="another architecture"):
        load_pretrained(create_model("resnet20"), str(ckpt))
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_pretrained(target, str(tmp_path / "nope.pt"))


# A few tensor names (and shapes) of torchvision's ImageNet checkpoints.
TORCHVISION_KEYS = {
    "vgg16": {"features.0.weight": (64, 3, 3, 3), "features.28.weight": (512, 512, 3, 3),
              "classifier.0.weight": (4096, 25088), "classifier.3.weight": (4096, 4096)},
    "alexnet": {"features.3.weight": (192, 64, 5, 5), "features.10.weight": (256, 256, 3, 3),
                "classifier.4.weight": (4096, 4096), "classifier.6.bias": None},
    "mobilenetv2": {"features.0.0.weight": (32, 3, 3, 3), "features.1.conv.0.0.weight": (32, 1, 3, 3),
                    "features.1.conv.1.weight": (16, 32, 1, 1), "features.2.conv.0.0.weight": (96, 16, 1, 1),
                    "features.2.conv.3.running_var": (24,), "features.18.0.weight": (1280, 320, 1, 1),
                    "classifier.1.weight": None},
    "resnet18": {"conv1.weight": None, "layer1.0.conv1.weight": (64, 64, 3, 3),
                 "layer2.0.downsample.0.weight": (128, 64, 1, 1), "layer4.1.bn2.running_var": (512,),
                 "fc.weight": None},
}


@pytest.mark.parametrize("name", sorted(TORCHVISION_KEYS))
def test_torchvision_parameter_names(name: str) -> None:
    kwargs = {"head": "imagenet"} if name == "vgg16" else {}
    with torch.device("meta"):  # names and shapes only: no memory, no init
        state = create_model(name, **kwargs).state_dict()
    for key, shape in TORCHVISION_KEYS[name].items():
        assert key in state, f"{name}: {key} missing"
        if shape is not None:
            assert tuple(state[key].shape) == shape, key
    if name == "vgg16":
        assert len([k for k in state if k.endswith("weight")]) == 16
    if name == "alexnet":
        assert len(state) == 16


@pytest.mark.parametrize(
    ("name", "kwargs", "torchvision_count"),
    [
        ("vgg16", {"head": "imagenet"}, 138_357_544),
        ("vgg16_bn", {"head": "imagenet"}, 138_365_992),
        ("vgg11", {"head": "imagenet"}, 132_863_336),
        ("alexnet", {"small_input": False}, 61_100_840),
        ("mobilenetv2", {"stem_stride": 2}, 3_504_872),
        ("resnet18", {"stem": "imagenet"}, 11_689_512),
    ],
)
def test_imagenet_configs_match_torchvision_sizes(name: str, kwargs: dict, torchvision_count: int) -> None:
    with torch.device("meta"):
        model = create_model(name, num_classes=1000, **kwargs)
    assert sum(p.numel() for p in model.parameters()) == torchvision_count
