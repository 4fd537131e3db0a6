"""Pretrained loading: torch.hub from a file served on 127.0.0.1, torchvision names, and the
"strict except the head" rule for run folders / weights files (train.setup)."""
from __future__ import annotations

import functools
import hashlib
import http.server
import re
import threading
from pathlib import Path

import pytest
import torch

from cnnlab.models import create_model, list_models, model_info
from cnnlab.models.pretrained import (IMAGENET_URLS, ArchitectureMismatchError, PretrainedFileError,
                                      classifier_layer, head_tensors, load_imagenet, load_pretrained)
from cnnlab.train.setup import load_pretrained_weights


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
    assert report.summary().endswith("new head: classifier.weight, classifier.bias (3 -> 10 classes)")
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
    with pytest.raises(ArchitectureMismatchError, match="another architecture"):  # a ValueError
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


def test_imagenet_path_keeps_trunk_strict_and_head_free(served, tmp_path: Path, monkeypatch) -> None:
    # load_imagenet: hash-checked torch.hub download; the trunk must match, the head is new.
    source, url, _, _ = served
    monkeypatch.setitem(IMAGENET_URLS, "cnn004", url)
    target = create_model("cnn004", num_classes=10)
    report = load_imagenet(target, "cnn004", model_dir=tmp_path / "cache", progress=False)
    assert torch.equal(target.features.conv4.weight, source.features.conv4.weight)
    assert report.new_head == ["classifier.weight", "classifier.bias"] and report.classes == (3, 10)
    monkeypatch.setitem(IMAGENET_URLS, "cnn000a", url)
    with pytest.raises(ArchitectureMismatchError, match="cnn000a.*ImageNet configuration"):
        load_imagenet(create_model("cnn000a"), "cnn000a", model_dir=tmp_path / "cache", progress=False)


# ---- strict except the head: run folders and weights files given as model.pretrained ----

def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _run_folder(root: Path, model_name: str, model: torch.nn.Module) -> Path:
    """A run folder as the trainer writes it (config.yaml + model.safetensors)."""
    from safetensors.torch import save_file

    root.mkdir()
    (root / "config.yaml").write_text(f"name: src\nmodel:\n  name: {model_name}\n")
    save_file(model.state_dict(), str(root / "model.safetensors"))
    return root


def test_other_architecture_fails_before_any_copy(tmp_path: Path) -> None:
    # Seen: a cnn004 run folder as model.pretrained of cnn000a. The old loader copied the one
    # tensor that matched by name and shape (classifier.bias) and trained on.
    torch.manual_seed(0)
    run = _run_folder(tmp_path / "run004", "cnn004", create_model("cnn004"))
    target = create_model("cnn000a")
    before = _state(target)
    with pytest.raises(ArchitectureMismatchError) as err:
        load_pretrained_weights(target, str(run), "cnn000a")
    msg = str(err.value)
    assert isinstance(err.value, ValueError) and "\n" not in msg
    assert str(run / "model.safetensors") in msg and "model cnn000a" in msg
    assert "features.conv1.weight: source (32, 3, 3, 3) != model" in msg  # first mismatches, with shapes
    assert "pre_head.fc1.weight (32, 192)" in msg  # missing from the source
    assert "the source is another architecture (a cnn004 run); use a run of cnn000a or drop model.pretrained" in msg
    after = target.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "weights half-loaded"
    # the same with a bare weights file (no config.yaml beside it)
    bare = tmp_path / "w.safetensors"
    bare.write_bytes((run / "model.safetensors").read_bytes())
    with pytest.raises(ArchitectureMismatchError, match="another architecture; use a run of cnn000a"):
        load_pretrained_weights(target, str(bare), "cnn000a")


@pytest.mark.parametrize("change", ["missing", "unexpected", "reshaped"])
def test_any_body_mismatch_is_an_error(tmp_path: Path, change: str) -> None:
    from safetensors.torch import save_file

    state = create_model("cnn004").state_dict()
    if change == "missing":
        del state["features.bn2.running_var"]
    elif change == "unexpected":
        state["features.extra.weight"] = torch.zeros(3)
    else:
        state["features.conv4.weight"] = torch.zeros(64, 64, 1, 1)
    save_file(state, str(tmp_path / "w.safetensors"))
    target = create_model("cnn004")
    before = _state(target)
    expected = {"missing": "1 missing from the source: features.bn2.running_var (32,)",
                "unexpected": "1 not in the model: features.extra.weight (3,)",
                "reshaped": "1 of another shape: features.conv4.weight: source (64, 64, 1, 1) != model (64, 64, 3, 3)"}
    with pytest.raises(ArchitectureMismatchError, match=re.escape(expected[change])):
        load_pretrained(target, str(tmp_path / "w.safetensors"), model_name="cnn004")
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


def test_same_architecture_new_class_count_keeps_new_head(tmp_path: Path, caplog) -> None:
    torch.manual_seed(0)
    source = create_model("cnn004", num_classes=10)
    run = _run_folder(tmp_path / "run", "cnn004", source)
    target = create_model("cnn004", num_classes=2)
    fresh_head = target.classifier.weight.clone(), target.classifier.bias.clone()
    with caplog.at_level("INFO", logger="cnnlab.models"):
        report = load_pretrained_weights(target, str(run), "cnn004")
    for name, tensor in target.state_dict().items():
        if not name.startswith("classifier."):
            assert torch.equal(tensor, source.state_dict()[name]), name
    assert torch.equal(target.classifier.weight, fresh_head[0]) and torch.equal(target.classifier.bias, fresh_head[1])
    n_body = len(source.state_dict()) - 2
    line = (f"pretrained {run / 'model.safetensors'}: loaded {n_body} tensors; "
            "new head: classifier.weight, classifier.bias (10 -> 2 classes)")
    assert report.summary() == line
    assert [r.getMessage() for r in caplog.records] == [line]  # one line, not one per tensor
    # INFO: the training log prints the report itself, a WARNING would print it twice on stderr
    assert [r.levelname for r in caplog.records] == ["INFO"]


def test_same_class_count_loads_everything(tmp_path: Path) -> None:
    source = create_model("cnn000a", num_classes=4)
    run = _run_folder(tmp_path / "run", "cnn000a", source)
    target = create_model("cnn000a", num_classes=4)
    report = load_pretrained_weights(target, str(run), "cnn000a")
    assert not report.new_head and not report.missing and not report.skipped
    assert torch.equal(target.classifier.weight, source.classifier.weight)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_broken_safetensors_names_the_file(tmp_path: Path, damage: str) -> None:
    run = _run_folder(tmp_path / "run", "cnn004", create_model("cnn004"))
    weights = run / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x8f not a tensor file " * 50,
                         "empty": b""}[damage])
    target = create_model("cnn004")
    for given in (run, weights):  # a run folder and the file itself
        with pytest.raises(PretrainedFileError) as err:
            load_pretrained_weights(target, str(given), "cnn004")
        msg = str(err.value)
        assert isinstance(err.value, ValueError)  # the CLI prints `cnnlab: error: <message>`
        assert str(weights) in msg and "truncated or corrupt" in msg and "re-run" in msg
        assert "\n" not in msg


def test_broken_torch_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save(create_model("cnn004").state_dict(), path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(PretrainedFileError, match=f"{re.escape(str(path))}.*truncated"):
        load_pretrained(create_model("cnn004"), str(path))


@pytest.mark.parametrize("name", [n for n in list_models() if n != "sequential"])
def test_classifier_layer_is_the_layer_giving_the_logits(name: str) -> None:
    # The head rule (last Linear with num_classes outputs) checked on every registered model:
    # the layer it names must produce forward()'s output. Meta tensors: shapes only, fast.
    with torch.device("meta"):
        model = create_model(name, num_classes=7).eval()
        layer = classifier_layer(model)
        seen = []
        dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: seen.append(o))
        side = model_info(name).input_size
        logits = model(torch.empty(2, 3, side, side))
    assert seen and seen[-1] is logits
    has_bias = getattr(dict(model.named_modules())[layer], "bias", None) is not None   # airbench's fc has none
    assert head_tensors(model) == {f"{layer}.weight"} | ({f"{layer}.bias"} if has_bias else set())


def test_imagenet_head_covers_hidden_dense_layers() -> None:
    with torch.device("meta"):
        vgg = create_model("vgg16_3block")
    assert {"head.fc1.weight", "head.bn.running_var", "classifier.weight"} <= head_tensors(vgg, whole_head=True)
    assert not any(n.startswith("features.") for n in head_tensors(vgg, whole_head=True))
