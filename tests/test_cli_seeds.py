"""`cnnlab train EXP --seeds N`: a one-point sweep, so a killed run of it is finished by the same command."""
from __future__ import annotations

import yaml

from cnnlab.runfolder import find_runs, read_metrics, read_summary
from cnnlab.search.seeds import run_seeds
from test_search_helpers import cli, sigkill_when, tiny_experiment

LONG_EPOCHS = 12   # each seed's length: time enough to SIGKILL the second seed between two checkpoints


def test_a_killed_seeds_run_finishes_the_missing_seeds_and_skips_the_finished_one(tmp_path, tiny_cifar):
    exp = tiny_experiment(tmp_path / "exp.yaml", epochs=LONG_EPOCHS)
    command = ("train", str(exp), "--seeds", "3", "--data-dir", str(tiny_cifar), "--runs-dir", "runs", "-q",
               "--no-report")
    last = sigkill_when(tmp_path, "runs/sweep-tiny-*/p00/*-s1/checkpoints/last.pt", "the second seed's first checkpoint",
                        *command)
    folder = last.parents[3]
    killed = last.parents[1]
    assert read_summary(killed) is None, "the second seed finished before the kill: the test proved nothing"
    (first,) = [r for r in find_runs(folder / "p00") if r.name.endswith("-s0")]
    assert read_summary(first)["status"] == "completed"
    first_mtime = (first / "summary.json").stat().st_mtime_ns
    assert not [r for r in find_runs(folder / "p00") if r.name.endswith("-s2")], "the third seed had not started"

    again = cli(*command, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"continuing seeds folder {folder.relative_to(tmp_path)}" in again.stdout
    assert f"already completed ({first.name}); skipped" in again.stdout and f"resuming {killed.name}" in again.stdout
    assert (first / "summary.json").stat().st_mtime_ns == first_mtime, "the finished seed was trained again"
    runs = find_runs(folder / "p00")
    assert [r.name[-3:] for r in runs] == ["-s0", "-s1", "-s2"] and runs[:2] == [first, killed]
    assert [read_summary(r)["status"] for r in runs] == ["completed"] * 3
    assert [read_summary(r)["seed"] for r in runs] == [0, 1, 2]
    assert [row["epoch"] for row in read_metrics(killed)] == list(range(1, LONG_EPOCHS + 1))
    lines = again.stdout.strip().splitlines()
    assert lines[-3:] == [str(r.relative_to(tmp_path)) for r in runs], "the run folders, one per line, last"
    assert any(line.startswith("| tiny | 3 |") for line in lines), "the seeds' table (mean ± std over 3 runs)"
    spec = yaml.safe_load((folder / "sweep.yaml").read_text())
    assert spec["grid"] == {} and spec["seeds"] == 3
    assert [r["folder"] for r in spec["points"][0]["runs"]] == [f"p00/{r.name}" for r in runs]


def test_run_seeds_again_trains_nothing_and_plain_train_keeps_one_folder(tmp_path, tiny_cifar):
    exp = tiny_experiment(tmp_path / "exp.yaml", epochs=1)
    quiet = dict(data_dir=str(tiny_cifar), quiet=True, report=False, log=lambda _: None)
    first = run_seeds(exp, 2, tmp_path / "runs", overrides=["batch_size=32"], **quiet)
    assert len(first.trained) == 2 and first.interrupted is None and not first.busy
    again = run_seeds(exp, 2, tmp_path / "runs", overrides=["batch_size=32"], **quiet)
    assert again.sweep.folder == first.sweep.folder and again.trained == [] and again.skipped == first.run_dirs()
    # Other seeds or another config: another folder, never a mix.
    other = run_seeds(exp, 1, tmp_path / "runs", overrides=["batch_size=32"], **quiet)
    assert other.sweep.folder != first.sweep.folder and len(other.trained) == 1

    proc = cli("train", str(exp), "--runs-dir", "plain", "--data-dir", str(tiny_cifar), "-q", "--no-report",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = find_runs(tmp_path / "plain")
    assert run.parent == tmp_path / "plain" and proc.stdout.strip().splitlines()[-1] == str(run.relative_to(tmp_path))
