"""The command line: thin commands over the API, clear errors with exit codes."""
import json
import os
import re

import pytest

from engine_helpers import REPO, run_cli, tiny_overrides


def overrides_args(**kw):
    out = []
    for o in tiny_overrides(**kw):
        out += ["-o", o]
    return out


@pytest.fixture(scope="module")
def finished_run(tiny_cifar, tmp_path_factory):
    runs = tmp_path_factory.mktemp("cli_runs")
    proc = run_cli("train", str(REPO / "recipes" / "004-b.yaml"), "--runs-dir", str(runs), "--data-dir",
                   str(tiny_cifar), "-q", "--no-report", *overrides_args(epochs=1))
    assert proc.returncode == 0, proc.stderr
    run_dir = proc.stdout.strip().splitlines()[-1]           # the last line is the run folder
    assert os.path.isdir(run_dir) and run_dir.startswith(str(runs))
    assert "epoch 1/1" in proc.stdout
    return runs, run_dir


def test_eval_reproduces_the_test_accuracy(finished_run, tiny_cifar):
    runs, run_dir = finished_run
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    proc = run_cli("eval", run_dir, "--split", "test", "--data-dir", str(tiny_cifar))
    assert proc.returncode == 0, proc.stderr
    acc = float(re.search(r"accuracy ([\d.]+)%", proc.stdout).group(1))
    assert acc == pytest.approx(100 * summary["final"]["test_acc"], abs=0.01)


def test_eval_with_tta_scores_the_views_and_compares_only_the_same_views(tiny_cifar, tmp_path):
    proc = run_cli("train", str(REPO / "recipes" / "004-b.yaml"), "--runs-dir", str(tmp_path), "--data-dir",
                   str(tiny_cifar), "-q", "--no-report", *overrides_args(epochs=1), "-o", "tta=flip+translate")
    assert proc.returncode == 0, proc.stderr
    run_dir = proc.stdout.strip().splitlines()[-1]
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    same = run_cli("eval", run_dir, "--tta", "flip+translate", "--data-dir", str(tiny_cifar))
    assert same.returncode == 0, same.stderr
    line = re.search(r"with flip\+translate TTA: accuracy ([\d.]+)%   \(summary.json: ([\d.]+)%\)", same.stdout)
    assert line, same.stdout
    assert float(line.group(1)) == pytest.approx(100 * summary["final"]["test_tta_acc"], abs=0.01)
    other = run_cli("eval", run_dir, "--tta", "airbench", "--data-dir", str(tiny_cifar))
    assert other.returncode == 0, other.stderr
    tta_line = [s for s in other.stdout.splitlines() if "with airbench TTA" in s]
    # The run trained with other views: summary.json's TTA accuracy is not shown as if it were comparable.
    assert len(tta_line) == 1 and "summary.json" not in tta_line[0]
    bad = run_cli("eval", run_dir, "--tta", "rotate", "--data-dir", str(tiny_cifar))
    assert bad.returncode == 2 and "airbench" in bad.stderr


def test_runs_lists_the_run(finished_run):
    runs, run_dir = finished_run
    proc = run_cli("runs", str(runs))
    assert proc.returncode == 0
    header, _, row = proc.stdout.splitlines()[:3]
    assert header.split()[:3] == ["run", "model", "params"]
    assert os.path.basename(run_dir) in row and "cnn004" in row and "82,346" in row and "1/1" in row


def test_config_error_exits_2_with_the_key(tiny_cifar, tmp_path):
    proc = run_cli("train", str(REPO / "recipes" / "004-a.yaml"), "-o", "optimizer.lrr=0.1", "--runs-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "unknown key 'lrr'" in proc.stderr and "Did you mean 'lr'" in proc.stderr
    assert not list(tmp_path.iterdir()), "a config error must not leave a run folder"


def test_missing_data_says_where_to_put_it(tmp_path):
    env = dict(os.environ, CNNLAB_DATA=str(tmp_path / "nothing"), XDG_CACHE_HOME=str(tmp_path / "cache"),
               CNNLAB_DOWNLOAD_MIRROR="http://127.0.0.1:9/")   # port 9: nothing listens, like no internet
    proc = run_cli("train", str(REPO / "recipes" / "004-a.yaml"), "--runs-dir", str(tmp_path / "runs"), env=env)
    assert proc.returncode == 1
    assert "CNNLAB_DATA" in proc.stderr and "cifar-10-batches-py" in proc.stderr
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir()), "no empty run folder"
    assert "Traceback" not in proc.stderr


def test_eval_of_an_unfinished_run_says_how_to_resume(tmp_path):
    (tmp_path / "config.yaml").write_text("name: x\n")
    proc = run_cli("eval", str(tmp_path))
    assert proc.returncode == 1 and "--resume" in proc.stderr


def test_help_lists_the_commands():
    proc = run_cli("--help")
    for cmd in ("train", "eval", "runs", "data", "models", "summary", "report", "compare"):
        assert cmd in proc.stdout


@pytest.mark.parametrize("model, total, trainable, non_trainable", [
    ("cnn004", "82,346", "81,962", "384"),            # report 004-a
    ("densenet000b", "45,634", "44,410", "1,224"),    # report 000-b
])
def test_summary_command_prints_the_reports_counts(model, total, trainable, non_trainable):
    proc = run_cli("summary", model)
    assert proc.returncode == 0, proc.stderr
    assert f"Total params: {total}\n" in proc.stdout
    assert f"Trainable params: {trainable}\n" in proc.stdout
    assert f"Non-trainable params: {non_trainable}\n" in proc.stdout


def test_models_command_lists_names_first():
    proc = run_cli("models")
    assert proc.returncode == 0
    names = [line.split()[0] for line in proc.stdout.splitlines()[1:] if line.strip()]
    assert {"cnn004", "resnet20", "mobilenetv2", "vgg16"} <= set(names)


def test_unknown_model_suggests_a_name():
    proc = run_cli("summary", "cnn04")
    assert proc.returncode == 1 and "cnn004" in proc.stderr and "cnnlab models" in proc.stderr


def test_data_info_without_out_writes_no_file(tiny_cifar, tmp_path):
    proc = run_cli("data", "info", "cifar10", "--data-dir", str(tiny_cifar), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "sample grid: not written (add --out samples.png)" in proc.stdout
    assert list(tmp_path.iterdir()) == [], "nothing is written to the working folder unless asked"


def test_train_writes_the_report_with_the_runs_own_numbers(tiny_cifar, tmp_path):
    proc = run_cli("train", str(REPO / "recipes" / "004-a.yaml"), "--runs-dir", str(tmp_path), "--data-dir",
                   str(tiny_cifar), "-q", *overrides_args(epochs=2))
    assert proc.returncode == 0, proc.stderr
    run_dir = proc.stdout.strip().splitlines()[-1]
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    html = open(os.path.join(run_dir, "report.html"), encoding="utf-8").read()
    assert f"{100 * summary['final']['test_acc']:.2f}" in html
    assert os.path.isfile(os.path.join(run_dir, "curves.png")) and os.path.isfile(os.path.join(run_dir, "report.md"))
    assert "warning" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("command", ["resume", "eval"])
def test_a_broken_config_yaml_is_named_in_one_line(tmp_path, command):
    (tmp_path / "config.yaml").write_text("name: x\ndata: {name: [cifar10\n")
    args = ["train", "--resume", str(tmp_path)] if command == "resume" else ["eval", str(tmp_path)]
    proc = run_cli(*args)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "config.yaml" in proc.stderr and "not valid YAML" in proc.stderr and str(tmp_path) in proc.stderr


def test_eval_needs_only_the_final_weights_and_the_saved_statistics(finished_run, tiny_cifar, tmp_path):
    import shutil

    runs, run_dir = finished_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    shutil.rmtree(copy / "checkpoints")   # a run shared without its (large) resume state
    summary = json.load(open(copy / "summary.json"))
    proc = run_cli("eval", str(copy), "--split", "test", "--data-dir", str(tiny_cifar))
    assert proc.returncode == 0, proc.stderr
    acc = float(re.search(r"accuracy ([\d.]+)%", proc.stdout).group(1))
    assert acc == pytest.approx(100 * summary["final"]["test_acc"], abs=0.01)
