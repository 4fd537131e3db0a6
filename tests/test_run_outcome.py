"""The end of every run says what it achieved (issue 37): the result block of a run folder, of --seeds N,
and what `cnnlab train` prints last."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cnnlab.report.compare import _stat, format_stat
from cnnlab.report.outcome import best_val_epoch, run_outcome, seeds_outcome
from cnnlab.runfolder import read_summary
from cnnlab.train.finish import stop_message
from engine_helpers import REPO, run_cli, tiny_overrides
from test_search_helpers import cli, tiny_experiment


def hand_written_run(folder: Path, *, status: str = "completed", seed: int = 0, test_acc: float = 0.9312,
                     tta_acc: float | None = 0.935, val: tuple = (0.5, 0.9120, 0.9120, 0.88), report: bool = True,
                     message: str | None = None) -> Path:
    """A run folder as the trainer leaves it, numbers chosen by hand (weights and report are empty files)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"name": "fast-cpu", "seed": seed, "tta": "flip+translate"}))
    rows = [{"epoch": i + 1, "val_acc": v, "train_loss": 1.0} for i, v in enumerate(val)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    final = {"test_loss": 0.51234, "test_acc": test_acc, "val_acc": val[-1]}
    if tta_acc is not None:
        final["test_tta_acc"] = tta_acc
    summary = {"name": "fast-cpu", "seed": seed, "status": status, "epochs_completed": len(val), "epochs": 11,
               "final": final, "wall_seconds": 532.4, "images_per_sec": 1234.5}
    if message:
        summary["message"] = message
    (folder / "summary.json").write_text(json.dumps(summary))
    if status in ("completed", "early_stopped"):
        (folder / "model.safetensors").write_bytes(b"")
        if report:
            (folder / "report.html").write_text("<html></html>")
    return folder


def test_the_block_of_a_finished_run_states_its_numbers_and_files(tmp_path):
    run = hand_written_run(tmp_path / "20261204-101500-fast-cpu", val=(0.5, 0.9120, 0.9120, 0.88))
    assert run_outcome(run) == "\n".join([
        "result: fast-cpu completed, 4/11 epochs (seed 0)",
        "  test accuracy   93.12%   test loss 0.5123",
        "  TTA accuracy    93.50%   (flip+translate)",
        "  best val epoch  2 of 4: val accuracy 91.20%",     # the first of equal epochs, as the best checkpoint
        "  wall time       8m 52s, 1,234 images/s",
        f"  report          {run / 'report.html'}",
        f"  weights         {run / 'model.safetensors'}",
    ])


def test_the_block_without_validation_tta_or_report_says_so(tmp_path):
    run = hand_written_run(tmp_path / "run", val=(None, None), tta_acc=None, report=False)
    block = run_outcome(run)
    assert "TTA" not in block
    assert "  best val epoch  - (no validation split)" in block.splitlines()
    assert f"  report          not written; write it with: cnnlab report {run}" in block.splitlines()


def test_a_stopped_runs_block_states_its_status_and_the_resume_command(tmp_path):
    run_dir = tmp_path / "run"
    message = stop_message("interrupted", None, run_dir, "data")
    run = hand_written_run(run_dir, status="interrupted", val=(0.5, 0.6), message=message)
    lines = run_outcome(run).splitlines()
    assert lines[0] == "result: fast-cpu interrupted, 2/11 epochs (seed 0)"
    assert not any("test accuracy" in line or "weights" in line for line in lines), "a stopped run was not tested"
    assert lines[-1] == f"  stopped by a signal; continue with: cnnlab train --resume {run_dir} --data-dir data"


def test_a_run_without_summary_names_the_resume_command(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("name: x\n")
    assert f"cnnlab train --resume {tmp_path / 'run'}" in run_outcome(tmp_path / "run")


def test_best_val_epoch_is_none_without_validation():
    assert best_val_epoch([{"epoch": 1, "val_acc": None}]) is None
    assert best_val_epoch([{"epoch": 1, "val_acc": 0.2}, {"epoch": 2, "val_acc": 0.3}])["epoch"] == 2


def test_the_seeds_block_has_a_line_per_seed_and_the_sample_mean_and_std(tmp_path):
    runs = [hand_written_run(tmp_path / "s0", seed=0, test_acc=0.90, tta_acc=0.91),
            hand_written_run(tmp_path / "s1", seed=1, test_acc=0.92, tta_acc=0.94),
            hand_written_run(tmp_path / "s2", seed=2, status="interrupted", message="stopped")]
    lines = seeds_outcome(runs).splitlines()
    assert lines[0] == "result: fast-cpu over 3 seeds (2 finished)"
    assert lines[1].startswith("  seed 0   test accuracy 90.00%   TTA 91.00%   best val 91.20% (epoch 2)   8m 52s")
    assert lines[1].endswith(str(runs[0] / "report.html"))
    assert lines[3].startswith("  seed 2   interrupted: not in the mean")
    expected = format_stat("test_acc", _stat([0.90, 0.92]))
    assert expected == "91.00 ± 1.41%"   # sample std (ddof=1), as the comparison table
    assert lines[4] == f"  mean ± std (n=2)   test accuracy {expected}   TTA 92.50 ± 2.12%   best val 91.20 ± 0.00%"


def test_cnnlab_train_ends_with_the_result_then_the_run_folder(tiny_cifar, tmp_path):
    overrides = [arg for o in tiny_overrides(epochs=1, tta="flip") for arg in ("-o", o)]
    proc = run_cli("train", str(REPO / "recipes" / "004-b.yaml"), "--runs-dir", str(tmp_path), "--data-dir",
                   str(tiny_cifar), "-q", *overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    run_dir = Path(lines[-1])                       # scripts rely on it: the run folder is still the last line
    assert run_dir.parent == tmp_path and (run_dir / "report.html").is_file()
    final = read_summary(run_dir)["final"]
    block = lines[lines.index("result: 004-b completed, 1/1 epochs (seed 0)"):-1]
    assert block[1] == f"  test accuracy   {100 * final['test_acc']:.2f}%   test loss {final['test_loss']:.4f}"
    assert block[2] == f"  TTA accuracy    {100 * final['test_tta_acc']:.2f}%   (flip)"
    assert f"  report          {run_dir / 'report.html'}" in block
    assert f"  weights         {run_dir / 'model.safetensors'}" in block


def test_train_seeds_prints_a_line_per_seed_and_the_mean_and_std(tiny_cifar, tmp_path):
    exp = tiny_experiment(tmp_path / "exp.yaml", epochs=1)
    proc = cli("train", str(exp), "--seeds", "2", "--data-dir", str(tiny_cifar), "--runs-dir", "runs", "-q",
               "--no-report", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    start = lines.index("result: tiny over 2 seeds (2 finished)")
    seeds, mean, folders = lines[start + 1:start + 3], lines[start + 3], lines[start + 4:]
    assert [line.split("   ")[0] for line in seeds] == ["  seed 0", "  seed 1"]
    accs = [read_summary(tmp_path / f)["final"]["test_acc"] for f in folders]
    assert len(folders) == 2, "the run folders follow, one per line, last"
    assert mean.startswith(f"  mean ± std (n=2)   test accuracy {format_stat('test_acc', _stat(accs))}")


def test_a_sweep_closes_with_its_best_point_and_pages(tiny_cifar, tmp_path):
    from cnnlab.search.sweep_folder import open_sweep
    from cnnlab.search.sweep_report import point_results

    exp = tiny_experiment(tmp_path / "exp.yaml", epochs=1)
    proc = cli("sweep", str(exp), "--grid", "optimizer.lr=0.01,0.03", "--data-dir", str(tiny_cifar), "--runs-dir",
               "runs", "-q", "--no-report", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    folder = tmp_path / lines[-1]                   # the sweep folder is still the last line
    results = point_results(open_sweep(folder))
    best = max(results, key=lambda r: r.metric[0])
    block = lines[next(i for i, line in enumerate(lines) if line.startswith("result: sweep ")):-1]
    assert block[0] == f"result: sweep {folder.name}: 2 points x 1 seed(s), 2 of 2 runs finished"
    assert block[1].startswith(f"  best point      {best.point_id} (optimizer.lr=")
    assert f": val_acc {100 * best.metric[0]:.2f}%, test_acc " in block[1]
    assert block[2].startswith(f"  its run         {Path(lines[-1]) / best.point_id}/")
    assert block[-2:] == [f"  table           {Path(lines[-1]) / 'sweep.md'}",
                          f"  figure          {Path(lines[-1]) / 'sweep.png'}"]


def test_a_search_closes_with_its_best_trial_and_recipe(tiny_cifar, tmp_path):
    from cnnlab.search.runner import run_search
    from test_search_helpers import tiny_space

    outcome = run_search(tiny_space(tmp_path / "space.yaml"), 1, runs_dir=tmp_path / "runs",
                         data_dir=str(tiny_cifar), log=lambda _: None)
    summary = read_summary(outcome.best_run)
    assert outcome.best_value == pytest.approx(summary["final"]["val_acc"])
    lines = outcome.closing_block().splitlines()
    assert lines == [
        "result: study search-tiny: 1 trials trained, 0 rejected by the limits, 0 running elsewhere",
        f"  best trial      0: val_acc {100 * outcome.best_value:.2f}%",
        f"  its run         {outcome.best_run}",            # no report.html: search writes curves only by default
        f"  recipe          {outcome.best_recipe}   (retrain: cnnlab train {outcome.best_recipe} --seeds 3)",
        f"  table           {outcome.study_dir / 'results.md'}"]


def test_a_probe_closes_with_each_layers_accuracies_on_the_largest_fit_set():
    from cnnlab.features.probe import ProbeResult, ProbeRow, ProbeSpec
    from cnnlab.report.probe_page import probe_outcome

    spec = ProbeSpec(layers=["flatten", "pre_logits"], ks=[1, 2, 3], svm=True, train_subsets=[100, None])
    row = dict(dim=8, subset="all", score_set="test", score_size=50)
    rows = [ProbeRow("flatten", method="knn", fit_size=100, accuracy=0.5, best_k=1, **{**row, "subset": "100"}),
            ProbeRow("flatten", method="knn", fit_size=1000, accuracy=0.61, best_k=3, **row),
            ProbeRow("flatten", method="svm", fit_size=1000, accuracy=0.7, **row),
            ProbeRow("pre_logits", method="knn", fit_size=1000, accuracy=0.8, best_k=2, **row)]
    result = ProbeResult(spec=spec, classes=["a", "b"], rows=rows, seconds=3.0)
    assert probe_outcome(result, "run/probes/x/report.html").splitlines() == [
        f"result: probe {spec.folder_name()} in 3.0 s",
        "  flatten     kNN 61.00% (k=3)   linear SVM (one-vs-rest) 70.00%   (fit on 1,000 images, scored on test)",
        "  pre_logits  kNN 80.00% (k=2)   (fit on 1,000 images, scored on test)",
        "  page        run/probes/x/report.html"]
