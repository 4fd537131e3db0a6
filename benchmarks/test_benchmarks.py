"""Tests of the train-speed benchmark on tiny generated CIFAR-format folders (no bundled data needed).

Run: .venv/bin/python -m pytest benchmarks -q
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench_common import EXPECTED_PARAMS_004A, steady_images_per_sec
from cifar_pickles import CifarDataError, find_cifar10_folder, load_cifar10_train
from train_speed import (BenchmarkError, format_table, interleaved_order, main as driver_main, parse_result_line,
                         summarize)

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
KERAS_PYTHON = BENCH_DIR / ".venv-keras" / "bin" / "python"


def write_cifar10_folder(root: Path, per_batch: int, test_images: int = 120, seed: int = 0) -> Path:
    """A publisher-format cifar-10-batches-py folder with random pixels; labels cycle through 0..9."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def dump(name: str, count: int, offset: int) -> None:
        entry = {b"batch_label": name.encode(), b"labels": [(offset + i) % 10 for i in range(count)],
                 b"data": rng.integers(0, 256, size=(count, 3072), dtype=np.uint8),
                 b"filenames": [f"{name}_{i}.png".encode() for i in range(count)]}
        with open(folder / name, "wb") as fh:
            pickle.dump(entry, fh)

    for b in range(1, 6):
        dump(f"data_batch_{b}", per_batch, offset=b)
    dump("test_batch", test_images, offset=0)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": names, b"num_cases_per_batch": per_batch, b"num_vis": 3072}, fh)
    return folder


@pytest.fixture(autouse=True)
def no_data_fallbacks(tmp_path: Path, monkeypatch) -> None:
    """Keep cnnlab's fallbacks ($CNNLAB_DATA, the user cache) from finding this machine's real data."""
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))


@pytest.fixture()
def tiny_cifar(tmp_path: Path) -> Path:
    """The folder HOLDING a tiny cifar-10-batches-py/: what --data-dir means everywhere."""
    write_cifar10_folder(tmp_path / "data", per_batch=60)
    return tmp_path / "data"


def test_loader_reads_channels_last_scaled_and_spans_batch_files(tmp_path: Path) -> None:
    folder = write_cifar10_folder(tmp_path, per_batch=7)
    with open(folder / "data_batch_1", "rb") as fh:
        entry = pickle.load(fh)
    # First image: red plane 10, green 20, blue 30, except pixel (row 1, col 2) of red = 255.
    row = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.full(1024, 30)]).astype(np.uint8)
    row[1 * 32 + 2] = 255
    entry[b"data"][0] = row
    with open(folder / "data_batch_1", "wb") as fh:
        pickle.dump(entry, fh)

    images, labels = load_cifar10_train(folder, 10)  # 7 from batch 1, 3 from batch 2
    assert images.shape == (10, 32, 32, 3) and images.dtype == np.float32
    assert np.allclose(images[0, 0, 0], [10 / 255, 20 / 255, 30 / 255])
    assert images[0, 1, 2, 0] == pytest.approx(1.0)
    assert images[0, 2, 1, 0] == pytest.approx(10 / 255)
    assert labels.tolist() == [1, 2, 3, 4, 5, 6, 7, 2, 3, 4]
    assert 0.0 <= images.min() and images.max() <= 1.0


def test_loader_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(CifarDataError, match="unpack.py"):
        load_cifar10_train(tmp_path / "absent", 10)
    folder = write_cifar10_folder(tmp_path, per_batch=5)
    assert load_cifar10_train(tmp_path, 8)[0].shape == (8, 32, 32, 3)  # the folder holding it, as cnnlab's --data-dir
    with pytest.raises(CifarDataError, match="between 1 and 50000"):
        load_cifar10_train(folder, 50_001)
    (folder / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(CifarDataError, match="data_batch_2 is not a readable CIFAR pickle"):
        load_cifar10_train(folder, 8)
    (folder / "data_batch_2").unlink()
    with pytest.raises(CifarDataError, match="incomplete.*data_batch_2 missing"):  # cnnlab's completeness check
        load_cifar10_train(folder, 8)


def test_data_dir_means_the_folder_holding_the_dataset_as_in_cnnlab(tmp_path: Path, monkeypatch) -> None:
    from cnnlab.data.locate import find_data_dir

    holder = tmp_path / "holder"
    folder = write_cifar10_folder(holder, per_batch=5)
    # The same answer as cnnlab's own lookup, for the holding folder and for the dataset folder itself.
    assert find_cifar10_folder(holder) == find_data_dir("cifar10", str(holder)) == folder
    assert find_cifar10_folder(folder) == folder
    with pytest.raises(CifarDataError, match=r"does not hold cifar-10-batches-py/.*unpack.py cifar10"):
        find_cifar10_folder(tmp_path)  # holds a folder that holds it: one level too high
    # cnnlab would quietly fall back to $CNNLAB_DATA; a benchmark must not read other data than it was given.
    monkeypatch.setenv("CNNLAB_DATA", str(holder))
    with pytest.raises(CifarDataError, match=rf"does not hold .*fall back to {folder}.*--data-dir {holder}"):
        find_cifar10_folder(tmp_path / "empty")


def test_steady_rate_skips_the_warmup_epoch() -> None:
    assert steady_images_per_sec([10.0, 2.0, 3.0], 100) == pytest.approx(200 / 5)
    with pytest.raises(ValueError, match="need more than 1"):
        steady_images_per_sec([1.0], 100)


def test_interleaved_order_alternates_direction() -> None:
    assert interleaved_order(["a", "b", "c"], 3) == ["a", "b", "c", "c", "b", "a", "a", "b", "c"]


def test_parse_result_line_takes_last_json_record_among_noise() -> None:
    out = 'log line\n{"not": "a result"}\n{"framework": "x", "images_per_sec": 5}\nWARNING trailing\n'
    assert parse_result_line(out) == {"framework": "x", "images_per_sec": 5}
    with pytest.raises(BenchmarkError, match="no JSON result line"):
        parse_result_line("nothing here\n{broken json\n")


def _record(framework: str, speed: float, other_cores: float = 0.01) -> dict:
    return {"framework": framework, "images_per_sec": speed, "final_train_accuracy": 0.5, "params": 1,
            "cpu_per_wall": 1.9, "other_processes_busy_cores": other_cores}


def test_summarize_ratios_against_plain_torch_mean() -> None:
    rows = summarize([_record("plain_torch", 100), _record("keras", 50), _record("plain_torch", 300),
                      _record("keras", 150)], ["plain_torch", "keras"])
    assert [r["framework"] for r in rows] == ["plain_torch", "keras"]
    assert rows[0]["images_per_sec"] == 200 and rows[0]["ratio_vs_plain_torch"] == 1.0
    assert rows[1]["ratio_vs_plain_torch"] == 0.5
    assert "| Keras 3 (TensorFlow) | 100 | 50, 150 | 0.50x |" in format_table(rows)


def test_summarize_leaves_out_disturbed_runs_only_when_a_clean_one_exists() -> None:
    rows = summarize([_record("plain_torch", 50, other_cores=0.9), _record("cnnlab", 80, other_cores=0.5),
                      _record("plain_torch", 200), _record("cnnlab", 60, other_cores=0.7)], ["plain_torch", "cnnlab"])
    torch_row, cnnlab_row = rows
    assert torch_row["images_per_sec"] == 200 and torch_row["disturbed_rounds"] == [1] and torch_row["rounds_used"] == 1
    assert cnnlab_row["all_rounds_disturbed"] and cnnlab_row["images_per_sec"] == 70
    assert cnnlab_row["ratio_vs_plain_torch"] == 0.35
    table = format_table(rows)
    assert "| plain PyTorch loop | 200 | 50*, 200 |" in table and "left out of the mean" in table


def test_per_round_ratios_pair_each_round_and_skip_disturbed_ones() -> None:
    def rec(framework, speed, rnd, other=0.01):
        return {**_record(framework, speed, other_cores=other), "round": rnd}

    # the machine is twice as fast in round 2, cnnlab is 0.9x the baseline in both: the pairs say 0.9
    records = [rec("plain_torch", 100, 1), rec("cnnlab", 90, 1), rec("cnnlab", 180, 2), rec("plain_torch", 200, 2),
               rec("plain_torch", 100, 3), rec("cnnlab", 10, 3, other=0.9)]
    rows = summarize(records, ["plain_torch", "cnnlab"])
    cnnlab_row = rows[1]
    assert cnnlab_row["round_ratios"] == [0.9, 0.9] and cnnlab_row["round_ratio_median"] == 0.9
    assert "| 0.90x (0.90-0.90, 2 rounds) |" in format_table(rows)


def test_ratios_against_keras_pair_rounds_too() -> None:
    def rec(framework, speed, rnd):
        return {**_record(framework, speed, other_cores=0.01), "round": rnd}

    records = [rec("plain_torch", 100, 1), rec("cnnlab", 150, 1), rec("keras", 75, 1), rec("cnnlab_compile", 180, 1),
               rec("plain_torch", 200, 2), rec("cnnlab", 300, 2), rec("keras", 100, 2), rec("cnnlab_compile", 330, 2)]
    rows = {r["framework"]: r for r in summarize(records, ["plain_torch", "cnnlab", "keras", "cnnlab_compile"])}
    assert rows["cnnlab"]["round_ratios_vs_keras"] == [2.0, 3.0] and rows["cnnlab"]["round_ratio_vs_keras_median"] == 2.5
    assert rows["cnnlab_compile"]["round_ratios_vs_keras"] == [2.4, 3.3]
    assert "round_ratios_vs_keras" not in rows["keras"]
    assert "cnnlab, compile: true vs Keras, round by round: 2.40, 3.30x (median 2.85x)" in format_table(list(rows.values()))


def test_cnnlab_script_turns_compile_on_only_when_asked() -> None:
    from cnnlab_004a import benchmark_overrides

    assert "compile=false" in benchmark_overrides(100, 2, 2, 0)
    assert "compile=true" in benchmark_overrides(100, 2, 2, 0, compile_on=True)


def test_cnnlab_script_pins_the_precision_it_is_given() -> None:
    from cnnlab_004a import benchmark_overrides

    assert "precision=fp32" in benchmark_overrides(100, 2, 2, 0)  # never the recipe's "auto"
    assert "precision=bf16" in benchmark_overrides(100, 2, 2, 0, precision="bf16")


def test_plain_torch_bf16_epoch_runs_the_convolutions_in_bf16() -> None:
    import torch

    from plain_torch_004a import build_model_004a, train_epoch

    seen: list[torch.dtype] = []
    for bf16 in (False, True):
        model = build_model_004a()
        model[0].register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
        images, labels = torch.rand(8, 3, 32, 32), torch.arange(8) % 10
        optimizer = torch.optim.Adam(model.parameters())
        train_epoch(model, optimizer, images, labels, torch.Generator().manual_seed(0), bf16=bf16)
        assert model[0].weight.dtype == torch.float32  # the weights stay float32 either way
    assert seen == [torch.float32, torch.bfloat16]


def test_plain_torch_model_matches_the_keras_parameter_count() -> None:
    from plain_torch_004a import build_model_004a, count_params

    assert count_params(build_model_004a()) == (EXPECTED_PARAMS_004A, 81_962)


def test_cnnlab_script_rejects_augmented_recipes() -> None:
    from cnnlab.train.experiment import load_experiment

    from cnnlab_004a import RecipeMismatch, benchmark_overrides, check_recipe

    recipe = REPO_DIR / "recipes" / "004-a.yaml"
    if not recipe.is_file():
        pytest.skip(f"{recipe} is absent")
    cfg = load_experiment(recipe, benchmark_overrides(100, 2, 1, 0))
    check_recipe(cfg)  # the plain recipe passes
    assert cfg.data.train_subset == 100 and cfg.data.normalize == "unit" and cfg.batch_size == 64
    with pytest.raises(RecipeMismatch, match="augmentation"):
        check_recipe(load_experiment(recipe, benchmark_overrides(100, 2, 1, 0) + ["augment.hflip=true"]))


def test_driver_runs_real_scripts_and_writes_results(tiny_cifar: Path, tmp_path: Path, capsys) -> None:
    recipe = REPO_DIR / "recipes" / "004-a.yaml"
    frameworks = ["plain_torch", "cnnlab", "keras"] if recipe.is_file() else ["plain_torch", "keras"]
    out = tmp_path / "results" / "speed.json"
    code = driver_main(["--data-dir", str(tiny_cifar), "--num-images", "150", "--epochs", "2", "--rounds", "1",
                        "--threads", "1", "--frameworks", *frameworks, "--keras-python", str(tmp_path / "no-python"),
                        "--quiet-wait", "0", "--max-busy-cores", "99", "--output", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "keras skipped" in printed and "pip install tensorflow-cpu keras" in printed
    results = json.loads(out.read_text())
    assert [r["framework"] for r in results["summary"]] == [f for f in frameworks if f != "keras"]
    for row in results["summary"]:
        assert row["params"] == EXPECTED_PARAMS_004A and row["images_per_sec"] > 0
    assert results["summary"][0]["ratio_vs_plain_torch"] == 1.0
    # --data-dir named the folder holding cifar-10-batches-py/; every script got the resolved folder.
    assert results["settings"]["data_folder"] == str(tiny_cifar / "cifar-10-batches-py")
    for run in results["runs"]:
        assert run["num_images"] == 150 and len(run["epoch_seconds"]) == 2 and run["threads"] == 1
    assert not list(out.parent.glob(".*.tmp"))  # no temporary file left behind


def test_driver_passes_the_precision_to_every_script(tiny_cifar: Path, tmp_path: Path) -> None:
    recipe = REPO_DIR / "recipes" / "004-a.yaml"
    frameworks = ["plain_torch", "cnnlab"] if recipe.is_file() else ["plain_torch"]
    out = tmp_path / "bf16.json"
    code = driver_main(["--data-dir", str(tiny_cifar), "--num-images", "100", "--epochs", "2", "--rounds", "1",
                        "--threads", "1", "--frameworks", *frameworks, "--precision", "bf16",
                        "--quiet-wait", "0", "--max-busy-cores", "99", "--output", str(out)])
    assert code == 0
    results = json.loads(out.read_text())
    assert results["settings"]["precision"] == "bf16"
    assert sorted(r["framework"] for r in results["runs"]) == sorted(frameworks)
    assert all(r["precision"] == "bf16" for r in results["runs"])


def test_driver_rejects_missing_data_dir(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        driver_main(["--data-dir", str(tmp_path / "nope"), "--output", str(tmp_path / "r.json")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unpack.py cifar10" in err and "does not hold cifar-10-batches-py/" in err


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_bench_runs_with_the_makefile_data_dir(tiny_cifar: Path, tmp_path: Path) -> None:
    """`make bench` exactly as the Makefile writes it, on tiny data: its --data-dir "$(CNNLAB_DATA)" must work.

    CNNLAB_DATA already holds the dataset, so the `data` target unpacks nothing; `-o` keeps make from
    reinstalling the venv (the install stamp) whatever its age.
    """
    out = tmp_path / "make-bench.json"
    bench_args = (f"--num-images 100 --epochs 2 --rounds 1 --threads 1 --frameworks plain_torch"
                  f"{' cnnlab' if (REPO_DIR / 'recipes' / '004-a.yaml').is_file() else ''} "
                  f"--quiet-wait 0 --max-busy-cores 99 --output {out}")
    env = {k: v for k, v in os.environ.items() if k not in ("CNNLAB_DATA", "MAKEFLAGS", "BENCH_ARGS")}
    command = ["make", "--no-print-directory", "-C", str(REPO_DIR), "-o", ".venv/.cnnlab-installed", "bench",
               "VENV=.venv", f"PY={sys.executable}", f"CNNLAB_DATA={tiny_cifar}",
               f"SHARED_DATASETS={tmp_path / 'no-shared'}", f"BENCH_ARGS={bench_args}"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    # make echoes the recipe line: the Makefile passed the holding folder, not cifar-10-batches-py itself.
    assert f'benchmarks/train_speed.py --data-dir "{tiny_cifar}" --num-images 100' in proc.stdout
    assert "unpacking" not in proc.stdout
    results = json.loads(out.read_text())
    assert results["settings"]["data_dir"] == str(tiny_cifar)
    assert results["settings"]["data_folder"] == str(tiny_cifar / "cifar-10-batches-py")
    assert {r["framework"] for r in results["runs"]} >= {"plain_torch"} and not results["failures"]


def test_script_rejects_single_epoch(tiny_cifar: Path) -> None:
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "plain_torch_004a.py"), "--data-dir", str(tiny_cifar),
                           "--epochs", "1"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--epochs must be at least 2" in proc.stderr


@pytest.mark.skipif(not KERAS_PYTHON.exists(), reason="benchmarks/.venv-keras is absent (see benchmarks/README.md)")
def test_keras_script_trains_the_same_model(tiny_cifar: Path) -> None:
    proc = subprocess.run([str(KERAS_PYTHON), str(BENCH_DIR / "keras_004a.py"), "--data-dir", str(tiny_cifar),
                           "--num-images", "100", "--epochs", "2", "--threads", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = parse_result_line(proc.stdout)
    assert record["framework"] == "keras" and record["params"] == EXPECTED_PARAMS_004A
    assert record["trainable_params"] == 81_962 and len(record["epoch_seconds"]) == 2
    assert record["precision"] == "fp32" and record["dtype_policy"] == "float32"


@pytest.mark.skipif(not KERAS_PYTHON.exists(), reason="benchmarks/.venv-keras is absent (see benchmarks/README.md)")
def test_keras_script_bf16_uses_the_mixed_policy_on_the_same_model(tiny_cifar: Path) -> None:
    proc = subprocess.run([str(KERAS_PYTHON), str(BENCH_DIR / "keras_004a.py"), "--data-dir", str(tiny_cifar),
                           "--num-images", "100", "--epochs", "2", "--threads", "1", "--precision", "bf16"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = parse_result_line(proc.stdout)
    assert record["precision"] == "bf16" and record["dtype_policy"] == "mixed_bfloat16"
    assert record["params"] == EXPECTED_PARAMS_004A and record["trainable_params"] == 81_962


def test_cpu_options_benchmark_reports_ratios_against_eager(tmp_path):
    out = tmp_path / "cpu_options.json"
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "cpu_options.py"), "--model", "airbench_cpu",
                           "--batch-size", "8", "--warmup-steps", "1", "--steps", "1", "--rounds", "2",
                           "--threads", "1", "--variants", "eager", "channels_last", "channels_last+frozen_whiten",
                           "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {r["variant"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"eager", "channels_last", "channels_last+frozen_whiten"}
    assert rows["eager"]["ratio_median"] == 1.0 and rows["channels_last"]["images_per_s"] > 0
    assert "ratio to eager" in proc.stdout


def test_cpu_options_frozen_whiten_on_a_model_without_one_names_the_problem():
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "cpu_options.py"), "--model", "cnn004",
                           "--batch-size", "4", "--warmup-steps", "1", "--steps", "1", "--rounds", "1",
                           "--threads", "1", "--variants", "channels_last+frozen_whiten"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "lacks" in proc.stderr and "whiten" in proc.stderr


def test_model_steps_benchmark_reports_time_ratios_against_the_first_model(tmp_path):
    out = tmp_path / "model_steps.json"
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "model_steps.py"), "--models", "cnn004", "cnn001e_residual",
                           "--batch-size", "4", "--warmup-steps", "1", "--steps", "2", "--rounds", "2",
                           "--threads", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {r["model"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["cnn004"]["time_ratio_median"] == 1.0 and rows["cnn004"]["params"] == 82_346
    assert rows["cnn001e_residual"]["params"] == 890_730 and len(rows["cnn001e_residual"]["images_per_s_rounds"]) == 2
    assert "time per image vs cnn004" in proc.stdout


def test_model_steps_takes_constructor_kwargs_per_model(tmp_path):
    out = tmp_path / "model_steps.json"
    narrow = 'airbench_cpu:{"widths": [8, 8, 8], "separable": true}'
    wide = 'airbench_cpu:{"widths": [16, 8, 24], "separable": true}'
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "model_steps.py"), "--models", narrow, wide,
                           "--batch-size", "4", "--warmup-steps", "1", "--steps", "1", "--rounds", "1",
                           "--optimizer", "sgd", "--threads", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {r["model"]: r for r in json.loads(out.read_text())["rows"]}
    # The widths reach the model: the wider net has more parameters, each counted from its own build.
    assert rows[narrow]["time_ratio_median"] == 1.0
    assert rows[wide]["params"] > rows[narrow]["params"] > 0


def test_model_steps_names_a_malformed_model_spec():
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "model_steps.py"), "--models",
                           "airbench_cpu:{widths: [8, 8, 8]}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "not JSON" in proc.stderr and "airbench_cpu" in proc.stderr
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "model_steps.py"), "--models", "airbench_cpu:[8, 8, 8]"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "JSON object" in proc.stderr


def test_model_steps_rejects_a_model_named_twice():
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "model_steps.py"), "--models", "cnn004", "cnn004"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "twice" in proc.stderr


def test_lrn_step_benchmark_times_both_layers_and_writes_the_ratio(tmp_path):
    out = tmp_path / "lrn_step.json"
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "lrn_step.py"), "--batch-size", "4", "--warmup-steps", "1",
                           "--steps", "2", "--rounds", "2", "--threads", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert sorted(res["images_per_s_rounds"]) == ["cnnlab_lrn", "torch_lrn"]
    assert all(len(v) == 2 and min(v) > 0 for v in res["images_per_s_rounds"].values())
    assert res["ratio_min"] <= res["ratio_median"] <= res["ratio_max"] and res["channels_last"] is True
    assert "cnnlab_lrn / torch_lrn" in proc.stdout


def test_lrn_step_baseline_really_uses_torch_lrn():
    """The baseline must be torch's layer, or the ratio compares cnnlab with itself."""
    sys.path.insert(0, str(BENCH_DIR))
    from lrn_step import build
    from torch import nn

    from cnnlab.models.blocks import LocalResponseNorm
    base, ours = build("torch_lrn", 0), build("cnnlab_lrn", 0)
    assert type(base.features.norm1) is nn.LocalResponseNorm and type(base.features.norm2) is nn.LocalResponseNorm
    assert isinstance(ours.features.norm1, LocalResponseNorm) and isinstance(ours.features.norm2, LocalResponseNorm)


def test_cpu_efficiency_counts_the_steps_arithmetic_and_accounts_for_its_time(tmp_path: Path) -> None:
    """A tiny run of benchmarks/cpu_efficiency.py: the FLOP count adds up, the frozen first layer
    has no input or weight gradient, and the profile's shares cover the step."""
    out = tmp_path / "eff.json"
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "cpu_efficiency.py"), "--batch-size", "16", "--warmup", "1",
                           "--steps", "2", "--profile-steps", "1", "--matmul", "128", "--threads", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    f = r["flops_per_step"]
    assert f["step"] == f["forward"] + f["weight_grad"] + f["input_grad"]
    assert f["input_grad"] < f["forward"] and f["weight_grad"] < f["forward"]   # the frozen whitening layer
    assert f["first_layer"].startswith("whiten")
    assert f["forward"] == 2 * 16 * f["macs_per_image"]
    assert r["achieved_gflops"] > 0 and 0 < r["share_of_peak"] < 1.5
    assert abs(sum(r["profile_share"].values()) - 1) < 0.01 and r["profile_share"]["convolution"] > 0.2
    assert "of the measured peak" in proc.stdout


def test_cpu_efficiency_bf16_holds_the_step_against_the_bf16_peak_of_the_widths_given(tmp_path: Path) -> None:
    """--precision bf16 --widths: the net built is the one named (its MACs scale with the widths),
    and both peaks are recorded, the bf16 one as the limit."""
    runs = {}
    for name, extra in (("narrow", ["--widths", "8,16,16"]), ("wide", ["--widths", "16,32,32"])):
        out = tmp_path / f"{name}.json"
        proc = subprocess.run([sys.executable, str(BENCH_DIR / "cpu_efficiency.py"), "--batch-size", "8",
                               "--warmup", "1", "--steps", "2", "--profile-steps", "1", "--matmul", "64",
                               "--threads", "1", "--precision", "bf16", *extra, "--out", str(out)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        runs[name] = json.loads(out.read_text())
    narrow, wide = runs["narrow"], runs["wide"]
    assert narrow["precision"] == "bf16" and narrow["model_kwargs"]["widths"] == [8, 16, 16]
    assert set(narrow["matmul_gflops"]) == set(narrow["matmul_gflops_fp32"]) == {"64"}
    assert narrow["peak_gflops"] == max(narrow["matmul_gflops"].values())
    # Doubling every width multiplies the MACs of the layers between two groups by 4; the fixed
    # 24-channel whitening layer and the first conv fed by it grow less.
    assert 2.0 < wide["flops_per_step"]["macs_per_image"] / narrow["flops_per_step"]["macs_per_image"] <= 4.0
    assert "fp32 matmul (reference)" in proc.stdout


def test_cpu_efficiency_widths_on_a_model_without_widths_is_an_error() -> None:
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "cpu_efficiency.py"), "--model", "cnn004",
                           "--widths", "8,16,16", "--steps", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "--widths applies to the airbench models only" in proc.stderr


def test_cpu_options_widths_on_a_model_without_widths_is_an_error() -> None:
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "cpu_options.py"), "--model", "cnn004",
                           "--widths", "8,16,16", "--steps", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "--widths applies to the airbench models only" in proc.stderr


def test_cpu_options_widths_builds_the_net_named(tmp_path: Path) -> None:
    out = tmp_path / "opts.json"
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "cpu_options.py"), "--model", "airbench_cpu",
                           "--widths", "8,16,16", "--batch-size", "8", "--warmup-steps", "1", "--steps", "1",
                           "--rounds", "1", "--threads", "1", "--variants", "bf16+channels_last+frozen_whiten",
                           "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert record["model_kwargs"] == {"widths": [8, 16, 16]}
    assert [r["variant"] for r in record["rows"]] == ["eager", "bf16+channels_last+frozen_whiten"]


def test_cpu_options_table_columns_line_up_under_long_variant_names() -> None:
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "cpu_options.py"), "--model", "airbench_cpu",
                           "--widths", "8,16,16", "--batch-size", "8", "--warmup-steps", "1", "--steps", "1",
                           "--rounds", "1", "--threads", "1", "--variants", "compile+bf16+channels_last+frozen_whiten"],
                           capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("variant"))
    column_end = lines[header].index("img/s (median)") + len("img/s (median)")
    rows = lines[header + 1:header + 3]
    assert [r.split()[0] for r in rows] == ["eager", "compile+bf16+channels_last+frozen_whiten"]
    # the img/s figure of every row ends where its header does
    assert all(r[column_end - 1].isdigit() and r[column_end] == " " for r in rows), "\n".join(lines[header:])


def test_time_to_accuracy_interleaves_sides_and_pairs_rounds() -> None:
    from time_to_accuracy import round_order, summarize
    assert round_order(2) == [(1, "keras"), (1, "cnnlab"), (2, "cnnlab"), (2, "keras")]
    records = [{"framework": "keras", "round": 1, "wall_seconds": 400.0, "test_accuracy": 0.78},
               {"framework": "cnnlab", "round": 1, "wall_seconds": 100.0, "test_accuracy": 0.80},
               {"framework": "cnnlab", "round": 2, "wall_seconds": 50.0, "test_accuracy": 0.77},
               {"framework": "keras", "round": 2, "wall_seconds": 300.0, "test_accuracy": 0.79},
               {"framework": "keras", "round": 3, "wall_seconds": 999.0, "test_accuracy": 0.79}]  # no cnnlab pair
    summary = summarize(records, target=0.7805)
    assert summary["ratios"] == [4.0, 6.0] and summary["ratio_median"] == 5.0
    assert summary["cnnlab"]["reached_target"] == 1 and summary["keras"]["reached_target"] == 2
    assert summary["keras"]["wall_median"] == 400.0


def test_time_to_accuracy_runs_cnnlab_whole_and_keeps_its_records(tiny_cifar: Path, tmp_path: Path) -> None:
    out, keep = tmp_path / "tta.json", tmp_path / "kept"
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "time_to_accuracy.py"), "--sides", "cnnlab", "--rounds", "1",
                           "--data-dir", str(tiny_cifar), "--epochs", "1", "--threads", "1", "--quiet-wait", "0",
                           "-o", "batch_size=50", "-o", "eval_batch_size=60", "--keep-runs", str(keep),
                           "--output", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    (run,) = results["runs"]
    assert run["framework"] == "cnnlab" and run["epochs"] == 1 and 0.0 <= run["test_accuracy"] <= 1.0
    assert run["overrides"][:3] == ["threads=1", "seed=1", "tta=false"] and run["wall_seconds"] > 0
    assert sorted(p.name for p in (keep / run["run_folder"]).iterdir()) == ["config.yaml", "metrics.jsonl", "summary.json"]
    assert "| 1 | cnnlab |" in proc.stdout and "ratio" not in results["summary"]


def test_time_to_accuracy_without_the_keras_venv_says_how_to_make_it(tiny_cifar: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "time_to_accuracy.py"), "--data-dir", str(tiny_cifar),
                           "--keras-python", str(tmp_path / "no-venv" / "python")], capture_output=True, text=True)
    assert proc.returncode == 2 and "python3 -m venv benchmarks/.venv-keras" in proc.stderr and "--sides cnnlab" in proc.stderr


@pytest.mark.skipif(not KERAS_PYTHON.exists(), reason="benchmarks/.venv-keras is absent (see benchmarks/README.md)")
@pytest.mark.parametrize("experiment, params", [("004-a", EXPECTED_PARAMS_004A), ("001-d", 1_250_858)])
def test_keras_report_recipe_scores_the_test_set(tiny_cifar: Path, experiment: str, params: int) -> None:
    proc = subprocess.run([str(KERAS_PYTHON), str(BENCH_DIR / "keras_report.py"), "--experiment", experiment,
                           "--data-dir", str(tiny_cifar), "--threads", "1", "--epochs", "1", "--num-images", "200"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    assert record["params"] == params and record["epochs"] == 1 and record["train_images"] == 200
    # The tiny folder's test labels cycle 0..9, so a random-pixel model scores near chance, never 0 or 1 exactly.
    assert 0.0 < record["test_accuracy"] < 1.0 and record["fit_seconds"] > 0


def test_precise_bn_probe_scores_the_saved_and_the_recomputed_statistics(tiny_cifar: Path, tmp_path: Path) -> None:
    from cnnlab.train.experiment import load_experiment
    from cnnlab.train.loop import train
    from precise_bn_probe import main as probe_main

    repo = Path(__file__).resolve().parents[1]
    overrides = ["epochs=1", "batch_size=16", "eval_batch_size=64", "data.val_size=20", "threads=1", "data.download=false"]
    result = train(load_experiment(repo / "recipes" / "004-a.yaml", overrides), runs_dir=tmp_path,
                   data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    out = tmp_path / "probe.json"
    assert probe_main([str(result.run_dir), "--data-dir", str(tiny_cifar), "--batches", "1,2", "--draws", "2",
                       "--batch-size", "16", "--threads", "1", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    # The saved statistics score what the run's summary says; the probe put them back at its end.
    assert record["moving_test_acc"] == pytest.approx(result.summary["final"]["test_acc"])
    assert [(r["batches"], r["images"], r["draw"]) for r in record["precise"]] == \
        [(1, 16, 0), (1, 16, 1), (2, 32, 0), (2, 32, 1)]
    assert record["batchnorm_layers"] == 4 and all(0 <= r["test_acc"] <= 1 for r in record["precise"])
