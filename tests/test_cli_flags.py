"""The command line's flags mean the same everywhere (issue 36, item 4): parser-level checks, no training."""
from __future__ import annotations

import argparse

import pytest

from cnnlab.cli import build_parser, main

MODEL_COMMANDS = {   # commands that run a run's model, with the fewest arguments they parse with
    "eval": ["eval", "RUN"],
    "layers": ["layers", "RUN"],
    "features": ["features", "RUN", "--layer", "pre_logits"],
    "probe": ["probe", "RUN", "--layer", "pre_logits", "--knn", "1"],
    "explain": ["explain", "RUN", "--index", "0"],
    "predict": ["predict", "RUN", "image.png"],
    "export": ["export", "RUN"],
    "robust": ["robust", "RUN"],
}
RUN_MAKING_COMMANDS = {   # commands that make run folders
    "train": ["train", "exp.yaml"],
    "sweep": ["sweep", "exp.yaml"],
    "search": ["search", "space.yaml", "--trials", "1"],
}
OVERRIDE_COMMANDS = {"train": ["train", "exp.yaml"], "config": ["config", "exp.yaml"], "sweep": ["sweep", "exp.yaml"]}


def commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(name path, parser) of every sub-command, nested ones (data info) included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,), sub
                yield from commands(sub, prefix + (name,))


ALL = list(commands(build_parser()))


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_the_commands_are_all_there():
    names = {" ".join(path) for path, _ in ALL}
    assert names >= {"train", "config", "eval", "runs", "compare", "report", "learning-curve", "data", "data info",
                     "models", "summary", "shapes", "layers", "features", "probe", "explain", "predict", "export",
                     "sweep", "search", "robust"}


@pytest.mark.parametrize("path, parser", ALL, ids=[" ".join(p) for p, _ in ALL])
def test_every_command_shows_an_example_and_every_flag_has_help(path, parser):
    text = parser.format_help()
    assert "example" in text and f"cnnlab {' '.join(path)}" in text.split("example")[-1], text
    no_help = [a.dest for a in parser._actions if not isinstance(a, argparse._SubParsersAction) and not a.help]
    assert not no_help, f"cnnlab {' '.join(path)}: no help text for {no_help}"


def test_dash_o_means_a_config_override_everywhere():
    for path, parser in ALL:
        for action in parser._actions:
            if "-o" in action.option_strings:
                assert action.option_strings == ["-o", "--override"] and action.dest == "override", path
    users = {" ".join(path) for path, parser in ALL if any("-o" in a.option_strings for a in parser._actions)}
    assert users == set(OVERRIDE_COMMANDS)
    for argv in OVERRIDE_COMMANDS.values():
        assert parse(*argv, "-o", "epochs=3", "--override", "seed=1").override == ["epochs=3", "seed=1"]


def test_report_writes_a_site_with_out_not_dash_o():
    assert parse("report", "runs", "--out", "site2").out == "site2"
    with pytest.raises(SystemExit):
        parse("report", "runs", "-o", "site2")


@pytest.mark.parametrize("name", list(MODEL_COMMANDS))
def test_every_model_running_command_takes_device_auto_by_default(name):
    argv = MODEL_COMMANDS[name]
    assert parse(*argv).device == "auto"
    assert parse(*argv, "--device", "cpu").device == "cpu"
    assert parse(*argv, "--device", "cuda").device == "cuda"
    with pytest.raises(SystemExit):
        parse(*argv, "--device", "tpu")


def test_device_is_on_exactly_the_model_running_commands():
    having = {" ".join(path) for path, parser in ALL if any("--device" in a.option_strings for a in parser._actions)}
    assert having == set(MODEL_COMMANDS)


class Loaded(Exception):
    """Raised by the fake load_run: the command got as far as loading the run."""


@pytest.mark.parametrize("name", list(MODEL_COMMANDS))
def test_device_reaches_load_run(name, monkeypatch, tmp_path):
    import torch

    import cnnlab.runs

    seen = {}

    def fake_load_run(run_dir, data_dir=None, weights="model.safetensors", device="cpu"):
        seen.update(run=str(run_dir), device=device, data_dir=data_dir)
        raise Loaded

    monkeypatch.setattr(cnnlab.runs, "load_run", fake_load_run)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = [str(tmp_path) if a == "RUN" else a for a in MODEL_COMMANDS[name]]
    with pytest.raises(Loaded):
        main(argv + ["--data-dir", "somewhere"])
    assert seen == {"run": str(tmp_path), "device": "cpu", "data_dir": "somewhere"}   # auto, without a GPU: cpu


def test_device_cuda_without_a_gpu_is_a_clear_error(monkeypatch, capsys, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["eval", str(tmp_path), "--device", "cuda"]) == 1
    err = capsys.readouterr().err
    assert "--device cuda: no CUDA device" in err and "--device cpu" in err


@pytest.mark.parametrize("name", list(RUN_MAKING_COMMANDS))
def test_every_run_making_command_takes_runs_dir(name):
    argv = RUN_MAKING_COMMANDS[name]
    assert parse(*argv).runs_dir == "runs"
    assert parse(*argv, "--runs-dir", "elsewhere").runs_dir == "elsewhere"


def test_data_dir_wherever_data_is_loaded():
    for path, parser in ALL:
        if path[0] in MODEL_COMMANDS or path[0] in RUN_MAKING_COMMANDS or path in (("report",), ("data", "info")):
            assert any(a.option_strings == ["--data-dir"] for a in parser._actions), path


def test_seeds_must_be_positive():
    with pytest.raises(SystemExit):
        parse("train", "exp.yaml", "--seeds", "0")
    assert parse("train", "exp.yaml").seeds == 1


def test_the_entry_point_and_python_dash_m(tmp_path):
    import subprocess
    import sys
    import tomllib
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    scripts = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["cnnlab"] == "cnnlab.cli:main"
    proc = subprocess.run([sys.executable, "-m", "cnnlab", "report", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "--out" in proc.stdout and "example" in proc.stdout
