"""`cnnlab search` on tiny generated data: limits before training, per-epoch pruning, SQLite resume."""
from __future__ import annotations

import optuna
from optuna.trial import TrialState

from cnnlab.runfolder import find_runs, read_metrics, read_summary
from cnnlab.search.runner import run_search, study_folder
from cnnlab.search.space import load_space
from cnnlab.search.study import default_storage, make_storage, open_study
from test_search_helpers import cli, sigkill_when, tiny_space

LONG_EPOCHS = 10   # the killed trial's length: time enough to SIGKILL it between two checkpoints


def _study(space_path, runs_dir, name="tiny"):
    space = load_space(space_path)
    storage = make_storage(default_storage(study_folder(runs_dir, name)), heartbeat_s=60)
    return open_study(space, name, storage)


def _quiet(_: str) -> None:
    pass


def test_a_trial_over_the_parameter_limit_is_rejected_before_it_trains(tmp_path, tiny_cifar):
    space = tiny_space(tmp_path / "space.yaml", architecture={"block": "plain", "stages": 2, "width": [32, 4]},
                       limits={"max_params": 2000})
    runs = tmp_path / "runs"
    (study_folder(runs, "tiny")).mkdir(parents=True)
    study = _study(space, runs)
    study.enqueue_trial({"arch.width": 32})   # 32 + 64 filters: ~24K parameters
    study.enqueue_trial({"arch.width": 4})    # 4 + 8 filters: a few hundred
    outcome = run_search(space, 1, runs_dir=runs, data_dir=str(tiny_cifar), log=_quiet)

    first, second = study.get_trials()
    assert first.state == TrialState.PRUNED and "above the limit of 2,000" in first.user_attrs["rejected"]
    assert first.user_attrs["params"] > 2000 and "run_dir" not in first.user_attrs
    assert second.state == TrialState.COMPLETE and second.user_attrs["params"] <= 2000
    assert find_runs(outcome.study_dir / "trials") == [outcome.study_dir / "trials" / _name(second)]
    assert outcome.counts == {"trained": 1, "running": 0, "waiting": 0, "rejected": 1}
    best = (outcome.study_dir / "best.yaml").read_text()
    assert best.startswith("# Best trial (1)") and "filters: 4" in best
    assert "rejected: " in (outcome.study_dir / "results.md").read_text()


def _name(trial) -> str:
    from pathlib import Path

    return Path(trial.user_attrs["run_dir"]).name


def test_the_pruner_stops_a_trial_that_falls_behind(tmp_path, tiny_cifar):
    # val_loss after each epoch: a trial that cannot learn (lr 1e-9) is above the median of the
    # first trial (lr 0.01) from its first epoch on, and the median pruner stops it.
    space = tiny_space(tmp_path / "space.yaml", base={"epochs": 3}, objective={"metric": "val_loss"},
                       architecture={"block": "plain", "stages": 2, "width": 8},
                       params={"optimizer.lr": [0.01, 1.0e-9]},
                       pruner={"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0})
    runs = tmp_path / "runs"
    study_folder(runs, "tiny").mkdir(parents=True)
    study = _study(space, runs)
    study.enqueue_trial({"optimizer.lr": 0.01})
    study.enqueue_trial({"optimizer.lr": 1.0e-9})
    run_search(space, 2, runs_dir=runs, data_dir=str(tiny_cifar), log=_quiet)

    good, bad = study.get_trials()
    assert good.state == TrialState.COMPLETE and len(read_metrics(good.user_attrs["run_dir"])) == 3
    assert bad.state == TrialState.PRUNED, (good.intermediate_values, bad.intermediate_values)
    stopped = bad.user_attrs["pruned_at_epoch"]
    assert stopped < 3
    summary = read_summary(bad.user_attrs["run_dir"])
    # the run ended as early stopped, with its final evaluation
    assert summary["status"] == "early_stopped" and summary["epochs_completed"] == stopped
    assert summary["final"]["test_acc"] is not None


def test_a_killed_sqlite_study_resumes_its_running_trial(tmp_path, tiny_cifar):
    space = tiny_space(tmp_path / "space.yaml", base={"epochs": LONG_EPOCHS})
    command = ("search", str(space), "--trials", "1", "--data-dir", str(tiny_cifar), "--runs-dir", "runs")
    last = sigkill_when(tmp_path, "runs/search-tiny/trials/*/checkpoints/last.pt", "the trial's first checkpoint",
                        *command)
    run_dir = last.parents[1]
    assert read_summary(run_dir) is None, "the trial finished before the kill: the test proved nothing"
    study_dir = tmp_path / "runs" / "search-tiny"
    storage = optuna.storages.RDBStorage(default_storage(study_dir))
    killed = optuna.load_study(study_name="tiny", storage=storage).get_trials()
    assert [t.state for t in killed] == [TrialState.RUNNING]

    again = cli(*command, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "marked FAIL and queued again" in again.stdout and f"resuming {run_dir}" in again.stdout
    first, retry = optuna.load_study(study_name="tiny", storage=storage).get_trials()
    assert first.state == TrialState.FAIL
    assert retry.state == TrialState.COMPLETE and retry.system_attrs["failed_trial"] == 0
    assert retry.user_attrs["run_dir"] == first.user_attrs["run_dir"] == str(run_dir.resolve())
    assert find_runs(study_dir / "trials") == [run_dir]   # resumed in place: no second run folder
    assert [row["epoch"] for row in read_metrics(run_dir)] == list(range(1, LONG_EPOCHS + 1))
    assert read_summary(run_dir)["status"] == "completed"
    # The study has its one trained trial: running it again trains nothing.
    run_search(space, 1, runs_dir=tmp_path / "runs", data_dir=str(tiny_cifar), log=_quiet)
    assert len(optuna.load_study(study_name="tiny", storage=storage).get_trials()) == 2
