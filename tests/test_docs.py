"""The documentation is part of the product: the results pages are regenerated from results/ and
must equal what is committed; the extension guide's Python samples run; every command the README
shows runs on tiny data."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine_helpers import REPO, run_cli, tiny_overrides


def test_results_pages_are_what_the_run_records_give():
    """`make results-docs` run again changes nothing: no number in docs/results/ or the README's
    headline table that the run records under results/ do not produce."""
    from cnnlab.report.results_docs import render

    differs = [str(path.relative_to(REPO)) for path, text in render(REPO).items() if path.read_text() != text]
    assert not differs, f"{differs} differ from what the run records give: run `make results-docs` and commit"


def test_readme_is_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 250


def _fenced(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def test_the_extension_guides_samples_run(tiny_cifar, tmp_path, monkeypatch):
    """Every Python block of docs/extend.md, in order, in one namespace, on tiny data. The task and
    model it registers are taken out of the tables afterwards (other tests list every task)."""
    import cnnlab.models.registry
    import cnnlab.tasks

    monkeypatch.setattr(cnnlab.tasks, "TASKS", dict(cnnlab.tasks.TASKS))
    monkeypatch.setattr(cnnlab.models.registry, "_REGISTRY", dict(cnnlab.models.registry._REGISTRY))
    monkeypatch.setenv("CNNLAB_DATA", str(tiny_cifar))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").symlink_to(REPO / "recipes")
    blocks = _fenced((REPO / "docs" / "extend.md").read_text(), "python")
    assert len(blocks) >= 5
    namespace: dict = {"__name__": "docs_extend"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/extend.md python block {i}", "exec"), namespace)
    assert namespace["result"].status == "completed"
    assert namespace["best"].epoch is not None


def _readme_commands() -> list[str]:
    commands = []
    for block in _fenced((REPO / "README.md").read_text(), "bash"):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def test_every_readme_command_runs_on_tiny_data(tiny_cifar, tmp_path):
    """The README's fenced commands, as written, in a scratch folder holding recipes/ and results/:
    `cnnlab train` gets tiny overrides and the tiny data folder; `<run>` is the run it printed;
    `make` lines must name a target of the Makefile (checked with make -n, which runs nothing)."""
    commands = _readme_commands()
    assert any(c.startswith("cnnlab train") for c in commands)
    (tmp_path / "recipes").symlink_to(REPO / "recipes")
    (tmp_path / "results").symlink_to(REPO / "results")
    photo = tmp_path / "my-photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(photo)
    env = {**os.environ, "CNNLAB_DATA": str(tiny_cifar)}
    run = None
    for command in commands:
        args = shlex.split(command)
        if args[0] == "make":
            proc = subprocess.run(["make", "-n", "-C", str(REPO), *args[1:]], capture_output=True, text=True)
            assert proc.returncode == 0, f"{command}: {proc.stderr}"
            continue
        assert args[0] == "cnnlab", f"a README command that no test runs: {command}"
        args = args[1:]
        if "<run>" in command:
            assert run is not None, f"{command}: no run trained before it"
            args = [run if a == "runs/<run>" else a for a in args]
        if args[0] == "compare":  # the shell would expand the globs
            args = [args[0]] + [str(p) for a in args[1:] for p in (sorted(tmp_path.glob(a)) if "*" in a else [a])]
        if args[0] == "train":
            args += [x for o in tiny_overrides(**{"data.train_subset": 160}) for x in ("-o", o)]
            args += ["--data-dir", str(tiny_cifar)]
        proc = run_cli(*args, env=env, cwd=tmp_path, timeout=600)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        if args[0] == "train" and run is None:
            run = proc.stdout.strip().splitlines()[-1].strip()
            assert (tmp_path / run).is_dir() or Path(run).is_dir(), run


def test_two_keras_records_of_one_report_get_their_own_headings():
    """Records of one report from two machines (or days) must not share a heading: the date and CPU
    of each record are in its heading."""
    from cnnlab.report.results_docs import _beside_keras

    records = ["results/speed/2026-12-05/time_to_accuracy-004a.json", "results/speed/2026-12-06/time_to_accuracy-004a.json"]
    if not all((REPO / r).is_file() for r in records):
        pytest.skip("the 004-a benchmark records are not in this checkout")
    headings = [_beside_keras(REPO, r)[0] for r in records]
    assert headings[0] != headings[1]
    assert all(h.startswith("## Report 004-a beside Keras, 2026-12-0") for h in headings)
