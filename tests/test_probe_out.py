"""`cnnlab probe --out` and `cnnlab features --out` leave the run folder untouched (issue 40, item 3)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine_helpers import REPO, run_cli, tiny_overrides


@pytest.fixture(scope="module")
def tiny_run(tiny_cifar, tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("probe_out_runs")
    overrides = [a for o in tiny_overrides(epochs=1) for a in ("-o", o)]
    r = run_cli("train", str(REPO / "recipes" / "004-a.yaml"), "--runs-dir", str(runs), "--data-dir",
                str(tiny_cifar), *overrides, "--no-report", timeout=300)
    assert r.returncode == 0, r.stderr
    return next(p for p in runs.iterdir() if (p / "model.safetensors").is_file())


def snapshot(folder: Path) -> dict[str, int]:
    """Every file and folder under ``folder`` with its mtime in nanoseconds."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_probe_and_features_with_out_leave_the_run_folder_untouched(tiny_run, tiny_cifar, tmp_path):
    before = snapshot(tiny_run)
    out = tmp_path / "probe"
    r = run_cli("probe", str(tiny_run), "--layer", "pre_logits", "--knn", "1,3", "--data-dir", str(tiny_cifar),
                "--device", "cpu", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == str(out / "report.html")
    assert (out / "results.json").is_file() and (out / "features" / "pre_logits" / "test.npz").is_file()
    assert json.loads((out / "results.json").read_text())["rows"]

    r = run_cli("features", str(tiny_run), "--layer", "pre_logits", "--split", "test", "--data-dir", str(tiny_cifar),
                "--device", "cpu", "--out", str(tmp_path / "feats"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "feats" / "pre_logits" / "test.npz").is_file()
    assert snapshot(tiny_run) == before   # same files, same mtimes
