"""Resume proven under every piece of state: schedule with warm-up, EMA, L2, label smoothing,
augmentation and early stopping, killed with SIGKILL at random steps (mid-epoch included).

Every tensor of the final and best weights and every metrics row (train/val losses and
accuracies, learning rate) must equal those of a run that was never stopped.
"""
import json
import random
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from engine_helpers import REPO, STATEFUL_OVERRIDES, run_cli, tiny_overrides

WORKER = REPO / "tests" / "resume_worker.py"
# 180 train images, batch 32: 6 steps an epoch (the last one of 20 images). Early stopping on
# val_loss with an impossible min_delta stops the run after epoch 3 of 6, so its counters, the
# best-weights record and the stop itself must all survive the kills.
OVERRIDES = STATEFUL_OVERRIDES
STEPS_PER_EPOCH = 6
TIMING = ("seconds", "images_per_sec")


def worker(data_dir, runs_dir, kill=(-1, -1), resume=None, overrides=None):
    overrides = OVERRIDES if overrides is None else overrides
    args = [sys.executable, str(WORKER), str(data_dir), str(runs_dir), str(kill[0]), str(kill[1]), json.dumps(overrides)]
    return subprocess.run(args + ([str(resume)] if resume else []), capture_output=True, text=True, cwd=REPO,
                          timeout=300)


def only_run(runs_dir):
    (run,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    return run


def rows_without_timing(run):
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_same_tensors(a: dict, b: dict, what: str):
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"{what}: tensors differ after resume: {diff[:5]}"


@pytest.fixture(scope="module")
def reference(tiny_cifar, tmp_path_factory):
    runs = tmp_path_factory.mktemp("reference")
    proc = worker(tiny_cifar, runs)
    assert proc.returncode == 0, proc.stderr
    return only_run(runs)


def test_reference_run_exercises_every_piece_of_state(reference):
    rows = rows_without_timing(reference)
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["status"] == "early_stopped" and len(rows) == 3
    lrs = [r["lr"] for r in rows]
    assert len(set(lrs)) == 3, "the schedule must move the learning rate between epochs"
    assert all(r["train_loss_total"] > r["train_loss"] for r in rows), "the L2 penalty is in the total loss"


def test_sigkill_at_random_steps_then_resume_equals_an_uninterrupted_run(tiny_cifar, tmp_path, reference):
    rng = random.Random()
    # Three distinct global steps within the 3 epochs the run trains; one lands in the first epoch
    # (before any checkpoint: the run restarts from its saved config), the others anywhere.
    first = rng.randrange(0, STEPS_PER_EPOCH)
    later = sorted(rng.sample(range(STEPS_PER_EPOCH, 3 * STEPS_PER_EPOCH), 2))
    kills = [divmod(g, STEPS_PER_EPOCH) for g in [first] + later]
    runs = tmp_path / "runs"
    run = None
    for kill in kills:
        proc = worker(tiny_cifar, runs, kill=kill, resume=run)
        assert proc.returncode == -9, f"kill at (epoch, step) {kill} of {kills}: {proc.returncode} {proc.stderr}"
        run = only_run(runs)
    proc = worker(tiny_cifar, runs, resume=run)
    assert proc.returncode == 0, f"kills at {kills}: {proc.stderr}"
    assert_same_tensors(load_file(str(run / "model.safetensors")), load_file(str(reference / "model.safetensors")),
                        f"final weights, kills at {kills}")
    assert_same_tensors(load_file(str(run / "checkpoints" / "best.safetensors")),
                        load_file(str(reference / "checkpoints" / "best.safetensors")), f"best weights, kills at {kills}")
    assert rows_without_timing(run) == rows_without_timing(reference), f"kills at {kills}"
    summary, ref = (json.loads((r / "summary.json").read_text()) for r in (run, reference))
    assert summary["status"] == "early_stopped" and summary["final"] == ref["final"]
    # Each resume is recorded; a run killed before its first checkpoint restarts with a fresh record.
    assert 1 <= len(summary["resumed_by"]) <= len(kills)
    assert not list(run.rglob("*.tmp")), "stale temporary files are cleaned on resume"


@pytest.fixture(scope="module")
def teacher(tiny_cifar, tmp_path_factory):
    """A finished tiny classification run to distill from."""
    runs = tmp_path_factory.mktemp("teacher")
    proc = worker(tiny_cifar, runs, overrides=tiny_overrides(epochs=1))
    assert proc.returncode == 0, proc.stderr
    return only_run(runs)


def test_sigkill_of_a_distilled_run_with_lookahead_and_ema_resumes_bitwise(tiny_cifar, tmp_path, teacher,
                                                                          reference):
    # The same state-heavy run (Lookahead, EMA, schedule, early stopping), now also learning from a
    # teacher; killed in its first epoch (before any checkpoint) and twice later.
    overrides = OVERRIDES + [f"distill.teacher={teacher}", "distill.temperature=2", "distill.alpha=0.5"]
    ref = worker(tiny_cifar, tmp_path / "ref", overrides=overrides)
    assert ref.returncode == 0, ref.stderr
    distilled = only_run(tmp_path / "ref")
    runs, run = tmp_path / "runs", None
    for kill in [(0, 3), (1, 2), (2, 5)]:
        proc = worker(tiny_cifar, runs, kill=kill, resume=run, overrides=overrides)
        assert proc.returncode == -9, f"kill at {kill}: {proc.returncode} {proc.stderr}"
        run = only_run(runs)
    proc = worker(tiny_cifar, runs, resume=run, overrides=overrides)
    assert proc.returncode == 0, proc.stderr
    assert f"teacher: {teacher}" in (run / "config.yaml").read_text()
    assert_same_tensors(load_file(str(run / "model.safetensors")), load_file(str(distilled / "model.safetensors")),
                        "final weights of the distilled run")
    assert rows_without_timing(run) == rows_without_timing(distilled)
    assert rows_without_timing(distilled) != rows_without_timing(reference), "the teacher changed the training"


def test_an_early_stopped_run_does_not_train_on_when_resumed(tiny_cifar, tmp_path, reference):
    import shutil

    run = tmp_path / reference.name
    shutil.copytree(reference, run)
    before = (run / "summary.json").read_text()
    proc = run_cli("train", "--resume", str(run), "--data-dir", str(tiny_cifar), "-q", "--no-report")
    assert proc.returncode == 0, proc.stderr
    assert "already finished (early_stopped, 3/6 epochs)" in proc.stdout
    assert (run / "summary.json").read_text() == before, "a finished run's summary (and command) stay as they were"
    # Killed after the stop was checkpointed but before the final evaluation: the resume evaluates,
    # and trains no further epoch (the stop is in the checkpoint).
    (run / "summary.json").unlink()
    (run / "model.safetensors").unlink()
    proc = run_cli("train", "--resume", str(run), "--data-dir", str(tiny_cifar), "-q", "--no-report")
    assert proc.returncode == 0, proc.stderr
    assert len(rows_without_timing(run)) == 3
    assert json.loads((run / "summary.json").read_text())["status"] == "early_stopped"
    assert_same_tensors(load_file(str(run / "model.safetensors")), load_file(str(reference / "model.safetensors")),
                        "final weights")
