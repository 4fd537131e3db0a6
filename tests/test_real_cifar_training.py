"""One epoch of the 004-a recipe on a stratified subset of the real bundled CIFAR-10."""
import json

import pytest

from cnnlab.experiment import load_experiment
from cnnlab.train.loop import train
from engine_helpers import REPO, run_cli


@pytest.mark.slow
def test_one_epoch_of_004a_on_real_cifar10(real_cifar10_dir, tmp_path):
    cfg = load_experiment(REPO / "recipes" / "004-a.yaml", [
        "epochs=1", "data.train_subset=2000", "data.val_size=500", "data.test_subset=1000", "data.download=false"])
    result = train(cfg, runs_dir=tmp_path, data_dir=str(real_cifar10_dir), quiet=True, log=lambda s: None,
                   report=False)
    s = result.summary
    assert s["data"] == {"train": 2000, "val": 500, "test": 1000}
    assert s["classes"][:2] == ["airplane", "automobile"]
    rows = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["images_per_sec"] > 0
    # One epoch (32 steps) on 2,000 real images: the network learns (train-mode accuracy well
    # above the 10% of chance). Eval-mode numbers lag this early because cnn004 keeps Keras'
    # batch-norm moving average (momentum 0.99), so they are only checked to be sane.
    assert 0.17 < rows[0]["train_acc"] < 0.8
    assert 0.05 < s["final"]["test_acc"] < 0.8


def test_data_info_command_on_real_cifar10(real_cifar10_dir, tmp_path):
    out = tmp_path / "grid.png"
    proc = run_cli("data", "info", "cifar10", "--data-dir", str(real_cifar10_dir), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "50000" in proc.stdout.replace(",", "") and "5000" in proc.stdout.replace(",", "")
    assert out.is_file() and out.stat().st_size > 10_000
