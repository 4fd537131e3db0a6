"""SIGKILL on every surface (issue 39, item 3): a transfer run killed in stage 1 and in stage 2, a
siamese run, a sweep killed between points and inside one, a `--seeds 3` run killed in its second
seed, and a kill while checkpoints/last.pt's temporary file exists. Each is resumed and must end
with every tensor and every metrics row (timing aside) equal to an uninterrupted run's.

The state-heavy classification run (Lookahead, EMA, early stopping) and the distilled one are in
test_engine_resume_state.py; DDP's killed rank in test_ddp.py. All runs go through
resume_worker.py, which SIGKILLs itself right after the optimizer step of a chosen (epoch, step).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cnnlab.runfolder import find_runs, read_summary
import resume_worker
from engine_helpers import REPO, tiny_overrides
from test_engine_resume_state import assert_same_tensors, only_run, rows_without_timing
from test_search_helpers import tiny_experiment

WORKER = REPO / "tests" / "resume_worker.py"
KILLED = -signal.SIGKILL


def worker(data_dir, runs_dir, kill=(-1, -1), resume=None, overrides=(), recipe=None, cli=None, kill_in=None,
           cwd=REPO):
    args = [sys.executable, str(WORKER), str(data_dir), str(runs_dir), str(kill[0]), str(kill[1])]
    if cli is None:
        args += [json.dumps(list(overrides))] + ([str(resume)] if resume else [])
        args += ["--recipe", str(recipe)] if recipe else []
    else:
        args += ["--cli", json.dumps(cli), "--kill-in", kill_in]
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=300, env=env)


def assert_same_run(run: Path, reference: Path, what: str) -> None:
    assert_same_tensors(load_file(str(run / "model.safetensors")), load_file(str(reference / "model.safetensors")),
                        f"{what}: final weights")
    assert rows_without_timing(run) == rows_without_timing(reference), f"{what}: metrics rows"
    assert read_summary(run)["final"] == read_summary(reference)["final"], f"{what}: final metrics"
    assert not list(run.rglob("*.tmp")), f"{what}: stale temporary files are cleaned on resume"


def kill_and_resume(data_dir, runs, kills, after_kill=None, **kw) -> Path:
    """Run, SIGKILLed at each (epoch, step) of `kills` in turn (each a resume of the last), then to
    the end; `after_kill(run, i)` may look at the run after the i-th kill."""
    run = None
    for i, kill in enumerate(kills):
        proc = worker(data_dir, runs, kill=kill, resume=run, **kw)
        assert proc.returncode == KILLED, f"kill at {kill} of {kills}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
        run = only_run(runs)
        if after_kill:
            after_kill(run, i)
    proc = worker(data_dir, runs, resume=run, **kw)
    assert proc.returncode == 0, f"kills at {kills}: {proc.stderr[-3000:]}"
    return only_run(runs)


def reference_of(data_dir, runs, overrides=(), recipe=None) -> Path:
    """The uninterrupted run, trained in this process (no interpreter to start) by the worker's own code."""
    argv = [str(data_dir), str(runs), "-1", "-1", json.dumps(list(overrides))]
    argv += ["--recipe", str(recipe)] if recipe else []
    assert resume_worker.main(argv) == 0
    return only_run(runs)


def sweep_reference_in(cwd: Path, command: list[str]) -> list[Path]:
    """An uninterrupted sweep (or seeds run) started in `cwd`, in this process."""
    before = os.getcwd()
    os.chdir(cwd)
    try:
        assert resume_worker.main(["-", "-", "-1", "-1", "--cli", json.dumps(command)]) == 0
    finally:
        os.chdir(before)
    return sweep_runs(cwd)


# --- transfer: two stages -------------------------------------------------------------------------
# 180 train images, batch 16: 12 steps an epoch. Stage 1 (the head, SGD) is 16 steps: epoch 0 and
# 4 steps of epoch 1; stage 2 (everything, Adam) 12 steps: to step 28, a partial third epoch.
TRANSFER = tiny_overrides(batch_size=16, **{
    "stages": "[{steps: 16, trainable: head, optimizer: sgd, lr: 0.01}, {epochs: 1, trainable: all, lr: 0.0005}]",
    "schedule.name": "cosine", "augment.hflip": "true"})


@pytest.fixture(scope="module")
def transfer_reference(tiny_cifar, tmp_path_factory):
    run = reference_of(tiny_cifar, tmp_path_factory.mktemp("transfer-ref"), overrides=TRANSFER)
    assert [r["stage"] for r in rows_without_timing(run)] == ["stage 1", "stage 2", "stage 2"]
    return run


def test_a_transfer_run_killed_in_stage_1_and_in_stage_2_resumes_bitwise(tiny_cifar, tmp_path, transfer_reference):
    # Killed at step 14 of stage 1's 16 (after epoch 0's checkpoint), resumed across the stage
    # boundary, killed again at step 25, in stage 2 (after a checkpoint written in stage 2).
    kills = [(1, 2), (2, 1)]

    def saved_in_stage(run, i):   # the checkpoint each kill left: (global step, stage)
        ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
        assert (ckpt["state"]["global_step"], ckpt["optimizer_stage"]) == [(12, 0), (24, 1)][i]

    run = kill_and_resume(tiny_cifar, tmp_path / "runs", kills, after_kill=saved_in_stage, overrides=TRANSFER)
    assert_same_run(run, transfer_reference, f"transfer, kills at {kills}")


# --- siamese ----------------------------------------------------------------------------------------
SIAMESE_RECIPE = REPO / "recipes" / "002-c-half-random.yaml"
# 12 steps an epoch, 30 steps: epochs 0, 1 and 6 steps of epoch 2. cnn004 as the twin's body
# (convnet002's 5x5 convs cost seconds a step here), few evaluation pairs and centroid images.
SIAMESE = tiny_overrides(batch_size=16, **{
    "model.name": "cnn004", "model.kwargs": "{}", "model.init": "default", "task.embed_from": "features",
    "task.embedding_dim": 16, "stages": "[{steps: 30}]", "optimizer.lr": 0.001, "augment.hflip": "true",
    "task.eval_pairs": 50, "task.centroid_images": 60})


def test_a_siamese_run_killed_mid_epoch_resumes_bitwise(tiny_cifar, tmp_path):
    reference = reference_of(tiny_cifar, tmp_path / "ref", overrides=SIAMESE, recipe=SIAMESE_RECIPE)
    assert "name: siamese" in (reference / "config.yaml").read_text()
    run = kill_and_resume(tiny_cifar, tmp_path / "runs", [(1, 7)], overrides=SIAMESE,
                          recipe=SIAMESE_RECIPE)
    assert_same_run(run, reference, "siamese")


# --- sweeps and seeds -------------------------------------------------------------------------------
def files_and_mtimes(folder: Path) -> dict:
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def sweep_runs(cwd: Path) -> list[Path]:
    (sweep_dir,) = (cwd / "runs").glob("sweep-tiny-*")
    return [run for point in sorted(sweep_dir.glob("p[0-9][0-9]")) for run in find_runs(point)]


@pytest.fixture(scope="module")
def sweep_command(tmp_path_factory):
    exp = tiny_experiment(tmp_path_factory.mktemp("sweep-exp") / "exp.yaml")
    return lambda data_dir: ["sweep", str(exp), "--grid", "epochs=1,3", "--grid", "optimizer.lr=0.01",
                             "--data-dir", str(data_dir), "--runs-dir", "runs", "-q", "--no-report"]


@pytest.fixture(scope="module")
def sweep_reference(tiny_cifar, tmp_path_factory, sweep_command):
    return sweep_reference_in(tmp_path_factory.mktemp("sweep-ref"), sweep_command(tiny_cifar))


@pytest.mark.parametrize("kill", [(-2, 0), (1, 3)], ids=["between-points", "inside-a-point"])
def test_a_killed_sweep_leaves_finished_points_alone_and_resumes_the_killed_one_bitwise(
        tiny_cifar, tmp_path, sweep_command, sweep_reference, kill):
    command = sweep_command(tiny_cifar)
    proc = worker(tiny_cifar, "-", kill=kill, cli=command, kill_in="p01", cwd=tmp_path)
    assert proc.returncode == KILLED, proc.stderr[-3000:]
    runs = sweep_runs(tmp_path)
    assert len(runs) == (1 if kill[0] < 0 else 2), [r.name for r in runs]
    assert read_summary(runs[0])["status"] == "completed"
    done = files_and_mtimes(runs[0])
    proc = worker(tiny_cifar, "-", cli=command, kill_in="p01", cwd=tmp_path)   # the same command again
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "already completed" in proc.stdout
    assert files_and_mtimes(runs[0]) == done, "the finished point's files were written again"
    runs = sweep_runs(tmp_path)
    assert len(runs) == 2
    for run, reference in zip(runs, sweep_reference):
        assert_same_run(run, reference, f"sweep killed at {kill}, {run.parent.name}")


def test_a_seeds_run_killed_in_its_second_seed_resumes_bitwise(tiny_cifar, tmp_path):
    exp = tiny_experiment(tmp_path / "exp.yaml", epochs=2)
    command = ["train", str(exp), "--seeds", "3", "--data-dir", str(tiny_cifar), "--runs-dir", "runs", "-q",
               "--no-report"]
    ref_cwd = tmp_path / "ref"
    ref_cwd.mkdir()
    references = sweep_reference_in(ref_cwd, command)
    cwd = tmp_path / "killed"
    cwd.mkdir()
    proc = worker(tiny_cifar, "-", kill=(1, 2), cli=command, kill_in="p00/s1", cwd=cwd)
    assert proc.returncode == KILLED, proc.stderr[-3000:]
    first = sweep_runs(cwd)[0]
    done = files_and_mtimes(first)
    proc = worker(tiny_cifar, "-", cli=command, kill_in="p00/s1", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert files_and_mtimes(first) == done, "the finished seed's files were written again"
    runs = sweep_runs(cwd)
    assert [r.name[-3:] for r in runs] == ["-s0", "-s1", "-s2"]
    for run, reference in zip(runs, references):
        assert_same_run(run, reference, f"--seeds 3 killed in seed 1, {run.name}")


# --- a kill while the checkpoint's temporary file exists ----------------------------------------------
TEMP_RUN = tiny_overrides(epochs=40, batch_size=64, **{"optimizer.lookahead": "{every: 2, decay: 0.8, ramp: 1.0}",
                                                       "regularization.ema": 0.9})


def sigkill_when_temp_checkpoint(data_dir, runs: Path, resume=None):
    """Start the worker (a run of 40 short epochs, one checkpoint each) and SIGKILL it the moment a
    temporary file of checkpoints/last.pt appears. Returns whether one was still there afterwards
    (the kill landed before the rename) and the run, or (False, None) if the run ended first."""
    args = [sys.executable, str(WORKER), str(data_dir), str(runs), "-1", "-1", json.dumps(TEMP_RUN)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(args + ([str(resume)] if resume else []), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            folders = [p / "checkpoints" for p in runs.iterdir()] if runs.is_dir() else []
            for folder in folders:
                try:
                    names = os.listdir(folder)
                except FileNotFoundError:
                    continue
                if any(n.startswith(".last.pt.") and n.endswith(".tmp") for n in names):
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(30)
                    left = [n for n in os.listdir(folder) if n.startswith(".last.pt.") and n.endswith(".tmp")]
                    return bool(left), folder.parent
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == 0, f"the run failed: exit {proc.returncode}"
    return False, None


def test_a_kill_while_the_checkpoint_temp_file_exists_resumes_bitwise(tiny_cifar, tmp_path):
    reference = reference_of(tiny_cifar, tmp_path / "ref", overrides=TEMP_RUN)
    runs, run, caught = tmp_path / "runs", None, 0
    for _ in range(8):   # each try kills at the next checkpoint write; one may land just after the rename
        left, killed = sigkill_when_temp_checkpoint(tiny_cifar, runs, resume=run)
        if killed is None:
            break
        run = killed
        caught += left
        if caught:
            break
    assert caught, "no kill landed while the temporary file existed"
    proc = worker(tiny_cifar, runs, resume=run, overrides=TEMP_RUN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_run(only_run(runs), reference, "killed while writing last.pt")
