"""A killed or interrupted run continues to the same final weights as an uninterrupted one."""
import json
import os
import signal
import subprocess
import time

import pytest
import torch
from safetensors.torch import load_file

from engine_helpers import REPO, cnnlab_cmd, run_cli, tiny_overrides

# 180 train images, batch 4: 45 steps an epoch, so a signal lands mid-epoch.
OVERRIDES = tiny_overrides(epochs=3, batch_size=4, **{"augment.hflip": "true", "augment.rotation": 10})


def train_cmd(data_dir, runs_dir):
    args = ["train", str(REPO / "recipes" / "004-a.yaml"), "--runs-dir", str(runs_dir), "--data-dir", str(data_dir), "-q", "--no-report"]
    for o in OVERRIDES:
        args += ["-o", o]
    return cnnlab_cmd(*args)


def only_run(runs_dir):
    (run,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    return run


@pytest.fixture(scope="module")
def reference(tiny_cifar, tmp_path_factory):
    runs = tmp_path_factory.mktemp("reference")
    proc = subprocess.run(train_cmd(tiny_cifar, runs), capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    run = only_run(runs)
    return load_file(str(run / "model.safetensors")), [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def start_and_signal(tiny_cifar, runs, sig, after_epochs=1, delay=0.3):
    proc = subprocess.Popen(train_cmd(tiny_cifar, runs), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    deadline = time.time() + 240
    metrics = None
    while time.time() < deadline and proc.poll() is None:
        dirs = [p for p in runs.iterdir() if p.is_dir()] if runs.exists() else []
        metrics = dirs[0] / "metrics.jsonl" if dirs else None
        if metrics and metrics.is_file() and len(metrics.read_text().splitlines()) >= after_epochs:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be signalled: " + proc.stderr.read()
    time.sleep(delay)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"tensors differ after resume: {diff[:5]}"


def test_sigkill_then_resume_gives_bitwise_same_weights(tiny_cifar, tmp_path, reference):
    runs = tmp_path / "runs"
    code, _, _ = start_and_signal(tiny_cifar, runs, signal.SIGKILL)
    assert code == -signal.SIGKILL
    run = only_run(runs)
    assert not (run / "model.safetensors").exists()
    assert not [p for p in run.rglob("*.tmp")], "a kill must not leave half-written files that count"
    proc = run_cli("train", "--resume", str(run), "--data-dir", str(tiny_cifar), "-q", "--no-report", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(run)
    assert_same_weights(load_file(str(run / "model.safetensors")), reference[0])
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert [r["train_loss"] for r in rows] == [r["train_loss"] for r in reference[1]]


def test_ctrl_c_saves_mid_epoch_and_resumes_exactly(tiny_cifar, tmp_path, reference):
    runs = tmp_path / "runs"
    code, out, err = start_and_signal(tiny_cifar, runs, signal.SIGINT, delay=0.5)
    assert code == 130, err
    run = only_run(runs)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and f"--resume {run}" in summary["message"]
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["epoch"] >= 1
    proc = run_cli("train", "--resume", str(run), "--data-dir", str(tiny_cifar), "-q", "--no-report", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert_same_weights(load_file(str(run / "model.safetensors")), reference[0])
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    proc = run_cli("train", "--resume", str(tmp_path))
    assert proc.returncode == 1 and "not a run folder" in proc.stderr
