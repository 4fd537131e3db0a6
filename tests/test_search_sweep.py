"""`cnnlab sweep` on tiny generated data: a grid of ordinary runs, killed and continued."""
from __future__ import annotations

import argparse
import fcntl
import json

import yaml

from cnnlab.runfolder import find_runs, read_metrics, read_summary
from cnnlab.cli.search import register
from cnnlab.search.sweep import run_sweep
from cnnlab.search.sweep_folder import plan_sweep
from test_search_helpers import cli, sigkill_when, tiny_experiment

LONG_EPOCHS = 12   # the second point's length: time enough to SIGKILL it between two checkpoints


def _call(*argv: str) -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    register(sub)
    args = p.parse_args(list(argv))
    return args.func(args)


def test_a_killed_sweep_skips_finished_points_and_resumes_the_interrupted_run(tmp_path, tiny_cifar):
    exp = tiny_experiment(tmp_path / "exp.yaml")
    command = ("sweep", str(exp), "--grid", f"epochs=1,{LONG_EPOCHS}", "--grid", "optimizer.lr=0.01",
               "--data-dir", str(tiny_cifar), "--runs-dir", "runs", "-q", "--no-report")
    last = sigkill_when(tmp_path, "runs/sweep-tiny-*/p01/*/checkpoints/last.pt", "the second point's first checkpoint",
                        *command)
    sweep_dir = last.parents[3]
    killed_run = last.parents[1]
    assert read_summary(killed_run) is None, "the run finished before the kill: the test proved nothing"
    done_run = find_runs(sweep_dir / "p00")[0]
    done_mtime = (done_run / "summary.json").stat().st_mtime_ns
    assert read_summary(done_run)["status"] == "completed"

    again = cli(*command, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "continuing sweep" in again.stdout and "already completed" in again.stdout
    assert f"resuming {killed_run.name}" in again.stdout
    # The finished point was not trained again; the killed one went on in its own folder.
    assert (done_run / "summary.json").stat().st_mtime_ns == done_mtime
    assert find_runs(sweep_dir / "p00") == [done_run] and find_runs(sweep_dir / "p01") == [killed_run]
    assert read_summary(killed_run)["status"] == "completed"
    assert [row["epoch"] for row in read_metrics(killed_run)] == list(range(1, LONG_EPOCHS + 1))
    spec = yaml.safe_load((sweep_dir / "sweep.yaml").read_text())
    assert spec["grid"] == {"epochs": [1, LONG_EPOCHS], "optimizer.lr": [0.01]}
    assert [p["overrides"] for p in spec["points"]] == [["epochs=1", "optimizer.lr=0.01"],
                                                        [f"epochs={LONG_EPOCHS}", "optimizer.lr=0.01"]]
    assert [p["runs"] for p in spec["points"]] == [[{"seed": 0, "folder": f"p00/{done_run.name}"}],
                                                   [{"seed": 0, "folder": f"p01/{killed_run.name}"}]]
    table = (sweep_dir / "sweep.md").read_text()
    assert "| p00 | 1 | 0.01 | 1 |" in table and "tiny (epochs=" in table   # grid table + comparison table
    assert (sweep_dir / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert again.stdout.strip().splitlines()[-1] == str(sweep_dir.relative_to(tmp_path))

    # --resume on a finished sweep trains nothing and says so.
    mtimes = {r: (r / "summary.json").stat().st_mtime_ns for r in (done_run, killed_run)}
    assert _call("sweep", "--resume", str(sweep_dir), "--data-dir", str(tiny_cifar), "-q") == 0
    assert {r: (r / "summary.json").stat().st_mtime_ns for r in mtimes} == mtimes


def test_seeds_share_a_point_and_a_point_in_use_is_left_alone(tmp_path, tiny_cifar):
    exp = tiny_experiment(tmp_path / "exp.yaml", epochs=1)
    sweep, _ = plan_sweep(exp, ["batch_size=16,32"], [], 2, tmp_path / "runs", name="s")
    (sweep.folder / "p00").mkdir()
    with open(sweep.folder / "p00" / ".point.lock", "a+") as held:   # another process at work on p0
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        outcome = run_sweep(sweep, data_dir=str(tiny_cifar), quiet=True, report=False, log=lambda _: None)
    assert outcome.busy == ["p00"] and find_runs(sweep.folder / "p00") == []
    runs = find_runs(sweep.folder / "p01")
    assert sorted(json.loads((r / "summary.json").read_text())["seed"] for r in runs) == [0, 1]
    assert sorted(r.name.rsplit("-", 1)[-1] for r in runs) == ["s0", "s1"]
