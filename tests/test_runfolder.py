"""cnnlab.runfolder: the one reader of run folders (finding runs, config, summary, metrics, RunData)."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnlab import runfolder, runs
from cnnlab.train.experiment import experiment_from_dict
from cnnlab.runfolder import (RunFolderError, find_runs, load_run_data, read_config_dict, read_metrics,
                              read_summary)
from report_fixtures import CLASS_NAMES, RealRuns, copy_run, real_runs, tiny_experiment

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> RealRuns:
    return real_runs(tmp_path_factory)


def test_find_runs_one_rule_config_yaml_at_any_depth_or_the_root_itself(real: RealRuns, tmp_path: Path) -> None:
    assert find_runs(real.root) == sorted(real.all)  # runs/a/<run>, runs/b/<run>, ...: nested one level
    deep = copy_run(real.smoke, tmp_path / "runs" / "sweep" / "lr" / "0.1")
    (tmp_path / "runs" / "not-a-run").mkdir()
    (tmp_path / "runs" / "not-a-run" / "summary.json").write_text("{}")  # no config.yaml: not a run
    assert find_runs(tmp_path / "runs") == [deep]
    assert find_runs(deep) == [deep]  # a run folder itself
    assert find_runs(tmp_path / "absent") == []
    assert runs.find_runs is find_runs  # the CLI's `cnnlab runs/report/compare` use this very rule


def test_read_config_dict_is_the_saved_resolved_experiment(real: RealRuns) -> None:
    config = read_config_dict(real.base)
    assert config["name"] == "tiny" and config["seed"] == 1 and config["data"]["name"] == "folder"
    assert experiment_from_dict(config) == tiny_experiment(real.data, "seed=1")
    assert runs.read_config(real.base) == tiny_experiment(real.data, "seed=1")


def test_corrupt_config_yaml_names_file_line_and_fix_for_every_reader(real: RealRuns, tmp_path: Path) -> None:
    run_dir = copy_run(real.base, tmp_path)
    (run_dir / "config.yaml").write_text("name: tiny\nepochs: 2\nmodel: {name: sequential\nseed: 1\n")
    for read in (read_config_dict, load_run_data, runs.read_config, runs.load_run):
        with pytest.raises(RunFolderError) as caught:
            read(run_dir)
        message = str(caught.value)
        assert message.startswith(f"config.yaml of {run_dir} is not valid YAML (line ")
        assert "restore it from" in message and "or delete the run" in message
        assert isinstance(caught.value, ValueError)  # the CLI turns ValueError into a one-line error
    assert runs.RunFolderError is RunFolderError  # one error type, whichever module raised it
    (run_dir / "config.yaml").write_text("- a list\n- not a mapping\n")
    with pytest.raises(RunFolderError, match="not the experiment's key: value mapping"):
        read_config_dict(run_dir)
    (run_dir / "config.yaml").unlink()
    with pytest.raises(RunFolderError, match="not a cnnlab run folder"):
        runs.load_run(run_dir)


def test_corrupt_summary_json_is_named(real: RealRuns, tmp_path: Path) -> None:
    run_dir = copy_run(real.base, tmp_path)
    assert read_summary(run_dir)["status"] == "completed"
    (run_dir / "summary.json").write_text('{"name": "tiny", "status": "compl')
    for read in (read_summary, load_run_data):
        with pytest.raises(RunFolderError, match=rf"summary.json of {run_dir} is not valid JSON \(line 1"):
            read(run_dir)
    (run_dir / "summary.json").unlink()
    assert read_summary(run_dir) is None
    assert "summary.json (no final numbers" in load_run_data(run_dir).missing[0]


def test_metrics_tolerate_a_partial_last_line_but_not_a_bad_middle_one(real: RealRuns, tmp_path: Path) -> None:
    run_dir = copy_run(real.base, tmp_path)
    epochs = len(read_metrics(run_dir))
    assert epochs == 2
    with (run_dir / "metrics.jsonl").open("a") as handle:
        handle.write('{"epoch": 3, "train_lo')  # killed while writing epoch 3
    warnings: list[str] = []
    assert len(read_metrics(run_dir, warnings)) == epochs and "partial last line" in warnings[0]
    run = load_run_data(run_dir)
    assert len(run.metrics) == epochs and "partial last line" in run.warnings[0]
    (run_dir / "metrics.jsonl").write_text('{"epoch": 1}\nnot json\n{"epoch": 3}\n')
    with pytest.raises(RunFolderError, match=r"metrics.jsonl:2 is not valid JSON"):
        load_run_data(run_dir)


def test_load_run_data_reads_everything_a_real_run_holds(real: RealRuns) -> None:
    run = load_run_data(real.base)
    summary = json.loads((real.base / "summary.json").read_text())
    assert run.missing == [] and run.warnings == []
    assert run.name == "tiny" and run.run_id == real.base.name and run.status == "completed"
    assert run.class_names == CLASS_NAMES
    assert [row["epoch"] for row in run.metrics] == [1, 2] == list(range(1, summary["epochs_completed"] + 1))
    assert list(run.predictions) == ["train", "val", "test"]
    assert [len(p.labels) for p in run.predictions.values()] == [36, 12, 12]
    test = run.predictions["test"]
    assert test.probs.shape == (12, 3)
    assert np.mean(test.probs.argmax(1) == test.labels) == pytest.approx(summary["final"]["test_acc"])
    assert run.final("test_acc") == pytest.approx(summary["final"]["test_acc"])
    assert "Total params" in run.model_summary and run.config_text.startswith("name: tiny")


def test_bad_run_folders_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match="does not exist"):
        load_run_data(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunFolderError, match="is it a run folder"):
        load_run_data(tmp_path / "empty")


def test_runs_table_names_a_corrupt_summary_instead_of_crashing(real: RealRuns, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    good, bad = copy_run(real.base, root), copy_run(real.seed2, root / "nested")
    (bad / "summary.json").write_text('{"name": "tiny", "fin')
    lines = runs.runs_table(root).splitlines()
    assert lines[0].split() == ["run", "model", "params", "epochs", "val", "acc", "%", "test", "acc", "%", "time",
                                "status"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert set(rows) == {good.name, f"nested/{bad.name}"}
    assert rows[f"nested/{bad.name}"].endswith("summary.json unreadable")
    assert " sequential " in rows[f"nested/{bad.name}"]  # the model still comes from config.yaml
    summary = json.loads((good / "summary.json").read_text())
    assert rows[good.name].endswith("completed") and f"{100 * summary['final']['test_acc']:.2f}" in rows[good.name]
    assert runs.runs_table(tmp_path / "none") == f"no runs under {tmp_path / 'none'}"


def test_runfolder_is_a_leaf_module() -> None:
    source = (REPO / "src" / "cnnlab" / "runfolder.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported - {"__future__", "json", "dataclasses", "pathlib", "typing"} == {"numpy", "yaml"}
    # importing it pulls in no torch, matplotlib or other cnnlab layer
    code = ("import sys, cnnlab.runfolder; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'matplotlib') or (m.startswith('cnnlab.') and m != 'cnnlab.runfolder')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stdout
    assert not hasattr(runfolder, "torch")
