"""benchmarks/gpu_check.sh (issue 38 item 5) on a machine without CUDA, and its helpers' plumbing.
The GPU numbers it produces are in results/gpu/; here only what runs without a GPU is checked."""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from engine_helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
PARTS = ("data", "cuda-tests", "resume", "time94")


def test_without_cuda_every_part_is_skipped_with_its_reason(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable, "OUT": str(tmp_path / "out"),
           "GPU_CHECK_WORK": str(tmp_path / "work")}
    env.pop("GPU_CHECK_DRYRUN", None)
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for part in PARTS:
        assert f"RESULT {part}: SKIP torch.cuda.is_available() is False (no CUDA GPU here)" in proc.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["cuda_available"] is False and set(summary["parts"]) == set(PARTS)
    assert all(v.startswith("SKIP ") for v in summary["parts"].values())
    assert "RESULT time94: SKIP" in (tmp_path / "out" / "gpu_check.log").read_text()


def _bundle(path, n_train=20, n_test=10, seed=0):
    """A tiny bundle in the layout of ../shared/datasets/cifar10.npz (WebP lossless per image)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    arrays = {"classes": np.array([f"c{i}".encode() for i in range(10)])}
    pixels = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        blobs = []
        for img in x:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="WEBP", lossless=True)
            blobs.append(buf.getvalue())
        arrays[f"{split}_webp"] = np.frombuffer(b"".join(blobs), np.uint8)
        arrays[f"{split}_offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
        arrays[f"{split}_labels"] = (np.arange(n) % 10).astype(np.int16)
        arrays[f"{split}_sha256"] = np.array(hashlib.sha256(x.tobytes()).hexdigest())
        pixels[split] = x
    np.savez(path, **arrays)
    return pixels


def test_data_parts_travel_apart_and_rebuild_both_layouts(tmp_path):
    from PIL import features
    if not features.check("webp"):
        pytest.skip("Pillow without WebP here")
    import torch

    import gpu_data
    from cnnlab.data.cifar import load_cifar

    pixels = _bundle(tmp_path / "bundle.npz")
    parts = gpu_data.pack(tmp_path / "bundle.npz", tmp_path / "parts", 2)
    assert len(parts) == 2
    with pytest.raises(SystemExit) as missing:
        gpu_data.unpack(tmp_path / "half", parts[:1], workers=1)
    assert missing.value.code == gpu_data.INCOMPLETE and not (tmp_path / "half").exists()
    gpu_data.unpack(tmp_path / "data", parts, workers=1)
    train, test = load_cifar(tmp_path / "data" / "cifar-10-batches-py", "cifar10", "fine")
    assert len(train) == 20 and len(test) == 10
    peer = torch.load(tmp_path / "data" / "airbench" / "cifar10" / "train.pt")
    assert peer["images"].dtype == torch.uint8 and torch.equal(peer["images"], torch.from_numpy(pixels["train"]))
    assert peer["labels"].dtype == torch.int64 and peer["classes"] == [f"c{i}" for i in range(10)]


def test_the_peer_wrapper_reads_the_peers_final_row():
    import airbench_peer

    cols = ["run   ", "epoch", "train_loss", "train_acc", "val_acc", "tta_val_acc", "total_time_seconds"]
    text = ("|  0  |      1  |  0.1  |  0.5  |  0.6  |         |  1.0  |\n"
            "|     |   eval  |       |       |       |  0.9401 |  3.5212  |\n")
    assert airbench_peer.final_row(text, cols) == {"run": "", "epoch": "eval", "train_loss": "", "train_acc": "",
                                                   "val_acc": "", "tta_val_acc": "0.9401", "total_time_seconds": "3.5212"}
    with pytest.raises(RuntimeError):
        airbench_peer.final_row("no table", cols)
