"""Every writer against a read-only folder: the error names the path the user gave (never a
temporary file like .m.onnx.<pid>.<random>.tmp) and the fix, in one line, exit status 1.

The folder is a real read-only file system (a read-only tmpfs mount; CI runs as root). Without
mount rights and not root, a folder without write permission (chmod 555) stands in: EACCES, whose
message says to fix the folder's permissions."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cnnlab.atomic import UnwritableError, make_folder, output_option, write_text_atomically
from test_search_helpers import cli, tiny_experiment, tiny_space


def _mount(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


def _read_only(folder: Path):
    """Make ``folder`` read-only; yields the words its error must say."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        proc = _mount(["--bind", str(folder), str(folder)])
        if proc.returncode != 0:
            pytest.skip(f"cannot bind-mount a read-only folder here (as root): {proc.stderr.strip()}")
        proc = _mount(["-o", "remount,ro,bind", str(folder)])
        if proc.returncode != 0:
            subprocess.run(["umount", str(folder)], check=False)
            pytest.skip(f"cannot remount a folder read-only here (as root): {proc.stderr.strip()}")
        try:
            yield f"{folder} is on a read-only file system", "remount it read-write"
        finally:
            subprocess.run(["umount", str(folder)], check=False)
    else:
        folder.chmod(0o555)
        try:
            yield f"no permission to write in {folder}", "fix the folder's permissions"
        finally:
            folder.chmod(0o755)


@pytest.fixture(scope="module")
def work(tiny_cifar, tmp_path_factory):
    """A finished tiny run, an image, a tiny experiment and space, and a copy of the run to make read-only."""
    base = tmp_path_factory.mktemp("readonly")
    exp = tiny_experiment(base / "exp.yaml", epochs=1)
    space = tiny_space(base / "space.yaml", base={"epochs": 1})
    proc = cli("train", str(exp), "--runs-dir", "runs", "--data-dir", str(tiny_cifar), "-q", "--no-report", cwd=base)
    assert proc.returncode == 0, proc.stderr
    run = next((base / "runs").iterdir())
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(base / "a.png")
    return {"base": base, "exp": exp, "space": space, "run": run, "data": tiny_cifar}


@pytest.fixture
def ro(tmp_path):
    gen = _read_only(tmp_path / "ro")
    why, fix = next(gen)
    yield tmp_path / "ro", why, fix
    next(gen, None)


def _fails_naming(proc: subprocess.CompletedProcess, target: Path, why: str, fix: str, option: str | None):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith(f"cnnlab: error: cannot write {target}: {why}; "), line
    assert line.endswith(f"choose another {option} or {fix}" if option else fix), line
    assert ".tmp" not in line and "Errno" not in line, line
    print(line)   # the messages, for the record (pytest -s)


WRITERS = {   # writer: (command after the paths are filled in, the target the error names, the flag)
    "run folder": (lambda w, ro: ["train", str(w["exp"]), "--runs-dir", str(ro / "runs"), "--data-dir", str(w["data"])],
                   lambda w, ro: f"run folders under {ro / 'runs'}", "--runs-dir"),
    "site": (lambda w, ro: ["report", str(w["run"].parent), "--out", str(ro / "site")],
             lambda w, ro: ro / "site", "--out"),
    "export": (lambda w, ro: ["export", str(w["run"]), "--out", str(ro / "m.onnx")],
               lambda w, ro: ro / "m.onnx", "--out"),
    "predictions": (lambda w, ro: ["predict", str(w["run"]), str(w["base"] / "a.png"), "--out", str(ro / "p.csv")],
                    lambda w, ro: ro / "p.csv", "--out"),
    "sweep folder": (lambda w, ro: ["sweep", str(w["exp"]), "--grid", "batch_size=16,32", "--runs-dir", str(ro),
                                    "--name", "s1", "--data-dir", str(w["data"])],
                     lambda w, ro: ro / "s1", "--runs-dir"),
    "search folder": (lambda w, ro: ["search", str(w["space"]), "--trials", "1", "--runs-dir", str(ro),
                                     "--data-dir", str(w["data"])],
                      lambda w, ro: ro / "search-tiny", "--runs-dir"),
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_read_only_output_folder_names_the_target_and_the_fix(writer, work, ro):
    folder, why, fix = ro
    command, target, option = WRITERS[writer]
    proc = cli(*command(work, folder), cwd=work["base"])
    _fails_naming(proc, target(work, folder), why, fix, option)


def test_a_read_only_run_folder_names_the_report_file(work, tmp_path):
    run = tmp_path / "runs" / work["run"].name
    shutil.copytree(work["run"], run)
    gen = _read_only(run)
    why, fix = next(gen)
    try:
        proc = cli("report", str(run), "--data-dir", str(work["data"]), cwd=work["base"])
    finally:
        next(gen, None)
    # The first file the report writes is a figure: its folder (inside the run) is named, and the run folder's fix.
    line = proc.stderr.strip()
    assert proc.returncode == 1 and len(line.splitlines()) == 1, proc.stderr
    assert line.startswith(f"cnnlab: error: cannot write {run}/"), line
    assert "read-only file system" in line or "no permission" in line, line
    assert line.endswith(fix) and ".tmp" not in line and "Errno" not in line, line
    print(line)


def test_the_api_names_the_target_not_the_temp_file(ro):
    folder, why, fix = ro
    with pytest.raises(UnwritableError) as err:
        write_text_atomically(folder / "report.md", "x")
    assert str(err.value) == f"cannot write {folder / 'report.md'}: {why}; {fix}"
    assert err.value.errno in (errno.EROFS, errno.EACCES)
    with output_option("--out"), pytest.raises(UnwritableError) as err:
        make_folder(folder / "site" / "runs")
    assert str(err.value) == f"cannot write {folder / 'site' / 'runs'}: {why}; choose another --out or {fix}"
