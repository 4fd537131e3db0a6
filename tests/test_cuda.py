"""CUDA: what the engine does on a GPU. Every test here skips on a machine without one (CI, the
project's CPU machines); benchmarks/gpu_check.sh runs them on a lent GPU (results/gpu/)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest
import torch
from safetensors.torch import load_file

from engine_helpers import REPO, tiny_overrides

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU (torch.cuda.is_available() is False)")

# 180 train images (20 carved for validation from 200), batch 16: 12 steps an epoch.
TINY_004A = tiny_overrides(epochs=2, batch_size=16, device="cuda", **{"augment.hflip": "true", "augment.crop_padding": 2})
# The GPU recipe at its real widths, on the tiny data: 2 epochs so freeze_after {whiten: 1} acts.
TINY_FAST_GPU = tiny_overrides(epochs=2, batch_size=32, device="cuda", tta="flip+translate", monitor_test="true",
                               **{"data.val_size": 0})


def _train(recipe: str, overrides: list[str], runs_dir, data_dir, **kw):
    from cnnlab.train.experiment import load_experiment
    from cnnlab.train.loop import train

    cfg = load_experiment(REPO / "recipes" / recipe, overrides)
    return train(cfg, runs_dir=runs_dir, data_dir=str(data_dir), quiet=True, log=lambda s: None, **kw)


def _rows(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_run_on_cuda_trains_in_bf16_and_records_the_gpu(tiny_cifar, tmp_path):
    result = _train("004-a.yaml", TINY_004A, tmp_path, tiny_cifar)
    assert result.status == "completed"
    s = result.summary
    assert s["device"].startswith("cuda") and s["hardware"]["gpu"] == torch.cuda.get_device_name(0)
    rows = _rows(result.run_dir)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(r["train_loss"] == r["train_loss"] and r["train_loss"] < 10 for r in rows)   # finite
    assert s["final"]["test_acc"] is not None
    weights = load_file(str(result.run_dir / "model.safetensors"))
    assert all(t.device.type == "cpu" and bool(torch.isfinite(t.float()).all()) for t in weights.values())


def test_the_gpu_recipe_runs_on_cuda_with_tta_and_per_epoch_test(tiny_cifar, tmp_path):
    result = _train("fast-gpu.yaml", TINY_FAST_GPU, tmp_path, tiny_cifar)
    assert result.status == "completed"
    rows = _rows(result.run_dir)
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["test_acc"] is not None for r in rows)
    final = result.summary["final"]
    assert final["test_acc"] is not None and final["test_tta_acc"] is not None
    assert result.summary["params"]["total"] > 1_900_000   # airbench94's widths


def test_deterministic_cuda_runs_are_bitwise_repeatable(tiny_cifar, tmp_path):
    over = TINY_004A + ["deterministic=true"]
    a = _train("004-a.yaml", over, tmp_path / "a", tiny_cifar)
    b = _train("004-a.yaml", over, tmp_path / "b", tiny_cifar)
    wa, wb = (load_file(str(r.run_dir / "model.safetensors")) for r in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [r["train_loss"] for r in _rows(a.run_dir)] == [r["train_loss"] for r in _rows(b.run_dir)]


def test_deterministic_true_trains_the_airbench_net_on_cuda(tiny_cifar, tmp_path):
    """deterministic: true is documented for any recipe; the airbench nets end in a global max pool,
    whose CUDA backward PyTorch may refuse under use_deterministic_algorithms."""
    result = _train("fast-gpu.yaml", TINY_FAST_GPU + ["deterministic=true", "epochs=1"], tmp_path, tiny_cifar)
    assert result.status == "completed"


def test_a_checkpoint_written_on_cpu_resumes_on_the_gpu(tiny_cifar, tmp_path):
    """README: a run started on CPU (device auto, no GPU visible) continues on a GPU, re-seeding the
    augmentation stream with a warning."""
    over = tiny_overrides(epochs=3, batch_size=16, **{"augment.hflip": "true"})
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": os.pathsep.join(
        [str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    # tests/resume_worker.py trains recipes/004-a.yaml and SIGKILLs itself after step 3 of epoch 1.
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "resume_worker.py"), str(tiny_cifar), str(tmp_path),
                           "1", "3", json.dumps(over)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == -9, proc.stderr
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert not (run / "model.safetensors").exists()
    from cnnlab.train.loop import train

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        done = train(None, resume=run, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    assert done.status == "completed"
    assert [r["epoch"] for r in _rows(run)] == [1, 2, 3]
    assert done.summary["device"].startswith("cuda")
    assert any("re-seeded" in str(w.message) for w in caught)


def test_the_airbench_net_on_cuda_computes_what_it_computes_on_cpu():
    from cnnlab.models import create_model

    torch.manual_seed(0)
    model = create_model("airbench94").eval()
    x = torch.randn(64, 3, 32, 32)
    model.init_from_data(x)
    with torch.no_grad():
        ref = model.double()(x.double())
        model = model.float().cuda()
        prev = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            out = model(x.cuda()).double().cpu()
        finally:
            torch.backends.cudnn.allow_tf32 = prev
    assert torch.isfinite(out).all()
    assert (out - ref).norm() / ref.norm() < 1e-4
