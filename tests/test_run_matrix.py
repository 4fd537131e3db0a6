"""Every command on every kind of run: for each registered task (classification, siamese) and for
a run with stages, a tiny real run goes through eval, probe, explain, predict, export, report,
compare and serves as a transfer source. Each cell passes (exit 0) or answers with the task's own
one-line "not meaningful" message (exit 1), never a traceback."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main
from cnnlab.tasks import TASKS, create_task
from engine_helpers import REPO, tiny_overrides

SIAMESE = ["stages.0.steps=24", "task.eval_pairs=40", "task.centroid_images=40", "batch_size=16",
           "eval_batch_size=64", "data.val_size=20", "threads=1", "data.download=false", "evaluate_train=false"]
RUNS = {
    "classification": ("004-a.yaml", tiny_overrides(epochs=1)),
    "siamese": ("002-c-half-random.yaml", SIAMESE),
    "stages": ("004-a.yaml", tiny_overrides() + ["stages=[{epochs: 1, trainable: head}, {epochs: 1, trainable: all}]"]),
}
COMMANDS = ["eval", "probe", "explain", "predict", "export", "report", "compare", "source"]


def test_the_matrix_covers_every_registered_task():
    assert set(TASKS) <= set(RUNS)


@pytest.fixture(scope="module")
def runs(tiny_cifar, tmp_path_factory):
    from cnnlab.pipeline import run_experiment
    from cnnlab.train.experiment import load_experiment

    root = tmp_path_factory.mktemp("matrix")
    made = {}
    for kind, (recipe, overrides) in RUNS.items():
        cfg = load_experiment(REPO / "recipes" / recipe, overrides + [f"name=matrix-{kind}"])
        result = run_experiment(cfg, root / "runs", data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
        assert result.status == "completed", kind
        made[kind] = result.run_dir
    image = root / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(image)
    return root, made, image


def _argv(command: str, run, root, image, data: str, kind: str) -> list[str]:
    if command == "eval":
        return ["eval", str(run), "--split", "test", "--data-dir", data]
    if command == "probe":
        return ["probe", str(run), "--layer", "pre_logits", "--knn", "1..3", "--data-dir", data, "--name", f"matrix-{kind}"]
    if command == "explain":
        return ["explain", str(run), "--index", "0", "--filters", "1", "--steps", "1", "--channels", "2",
                "--ig-steps", "2", "--data-dir", data]
    if command == "predict":
        return ["predict", str(run), str(image)]
    if command == "export":
        return ["export", str(run), "--out", str(root / f"{kind}.onnx"), "--check-images", "4"]
    if command == "report":
        return ["report", str(run)]
    if command == "compare":
        return ["compare", str(run), str(run)]
    # source: a new classification run starting from this run's weights
    return ["train", str(REPO / "recipes" / "004-a.yaml"), "--runs-dir", str(root / f"from-{kind}"),
            "--data-dir", data, "--no-report", "--quiet", "-o", f"model.pretrained={run}"]\
        + [f"-o={o}" for o in tiny_overrides(epochs=1)]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", list(RUNS))
def test_every_command_works_or_says_in_one_line_why_not(runs, tiny_cifar, kind, command, capsys):
    root, made, image = runs
    task = create_task({"name": "siamese"} if kind == "siamese" else {})
    code = main(_argv(command, made[kind], root, image, str(tiny_cifar), kind))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    reason = task.unsupported(command)
    if reason is None:
        assert code == 0, err[-2000:]
    else:
        assert code == 1 and reason in err and len(err.strip().splitlines()) == 1, err
