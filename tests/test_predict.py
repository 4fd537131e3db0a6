"""Predicting with a trained run: the load_run handle, files of any mode and size, `cnnlab predict`.

Real tiny runs (report_fixtures.real_runs: 16 px image folders, per-channel normalization, a
3-class softmax run and a 2-class sigmoid run; plus a CIFAR-format cnn004 run here) are
predicted on image files holding their test images' pixels, and the probabilities are compared
with what the trainer saved in predictions/test.npz for the same images, by index.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnlab
from cnnlab.data import DataError
from cnnlab.data.files import UnreadableImageError, decode_files, find_image_files
from cnnlab.data.folder import load_image_folder
from cnnlab.evaluate.metrics import classification_metrics
from cnnlab.export import predict_files
from cnnlab.cli.predict import register
from cnnlab.runfolder import read_predictions
from cnnlab.runs import LoadedRun, evaluate_run, load_run, runs_table
from engine_helpers import REPO, tiny_overrides
from report_fixtures import CLASS_NAMES, IMAGE_SIZE, RealRuns, copy_run, real_runs

EXACT = 1e-6  # same pixels, same weights, same float32 kernels: equal up to summation order


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> RealRuns:
    return real_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def cifar_run(tiny_cifar: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A 1-epoch cnn004 run (recipe 004-a: raw pixels) on a tiny CIFAR-10-format folder, and its
    test images in the order of its predictions (the dataset is then not given again)."""
    from cnnlab.train import train
    from cnnlab.train.experiment import load_experiment

    cfg = load_experiment(REPO / "recipes" / "004-a.yaml", tiny_overrides(epochs=1))
    result = train(cfg, runs_dir=tmp_path_factory.mktemp("cifar-runs"), data_dir=str(tiny_cifar), quiet=True,
                   log=lambda s: None)
    assert result.status == "completed"
    images = load_run(result.run_dir, data_dir=str(tiny_cifar)).splits.test.images.numpy()
    return result.run_dir, images


def saved_test(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities N x K with sigmoid columns expanded, labels) of predictions/test.npz."""
    test = read_predictions(run_dir)["test"]
    probs = test.probs
    if probs.shape[1] == 1:
        probs = np.concatenate([1 - probs, probs], axis=1)
    assert np.array_equal(test.indices, np.sort(test.indices))
    return probs, test.labels


def write_png(path: Path, chw: np.ndarray, mode: str = "RGB") -> Path:
    """A C x H x W uint8 image as a PNG file in `mode` (RGBA: opaque alpha added)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    hwc = np.ascontiguousarray(chw.transpose(1, 2, 0))
    img = Image.fromarray(hwc)
    if mode == "RGBA":
        img = Image.fromarray(np.dstack([hwc, np.full(hwc.shape[:2], 255, np.uint8)]), "RGBA")
    img.save(path)
    return path


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cnnlab")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(list(argv))


# --- the handle -------------------------------------------------------------------------------------


def test_load_run_is_lazy_and_predict_needs_no_dataset(cifar_run, tmp_path: Path, monkeypatch) -> None:
    run_dir, images = cifar_run
    # Nowhere to find CIFAR, whatever this machine's environment says (a $CNNLAB_DATA holding the
    # real CIFAR-10 made evaluate() succeed here).
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    assert cnnlab.load_run is load_run and "load_run" in cnnlab.__all__
    run = load_run(run_dir)   # no data_dir: the tiny CIFAR folder is nowhere cnnlab looks by itself
    assert isinstance(run, LoadedRun) and run.input_size == 32 and run.classes[:2] == ["airplane", "automobile"]
    files = [write_png(tmp_path / f"{i:03d}.png", img) for i, img in enumerate(images)]
    probs = run.predict(files)
    assert "splits" not in vars(run)   # predicting loaded no data
    expected, labels = saved_test(run_dir)
    assert probs.shape == expected.shape == (len(images), 10)
    assert np.abs(probs - expected).max() < EXACT
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    with pytest.raises(DataError):   # the data is only needed, and only missed, for evaluation
        run.evaluate("test")


def test_predict_on_files_equals_the_saved_test_predictions(real: RealRuns, tmp_path: Path) -> None:
    run = load_run(real.base)
    expected, _ = saved_test(real.base)
    n = len(real.test_images)
    # test image i, written as an RGB PNG, an opaque RGBA PNG, and (the same pixels) one of each in a folder
    rgb = [write_png(tmp_path / "rgb" / f"{i:03d}.png", img) for i, img in enumerate(real.test_images)]
    rgba = [write_png(tmp_path / "rgba" / f"{i:03d}.png", img, "RGBA") for i, img in enumerate(real.test_images)]
    assert Image.open(rgba[0]).mode == "RGBA"
    for files in (rgb, rgba):
        assert np.abs(run.predict(files) - expected).max() < EXACT
    from_folder = predict_files(run, [tmp_path / "rgb"])
    assert from_folder.files == [str(p) for p in rgb] and not from_folder.failed
    assert np.abs(from_folder.probs - expected).max() < EXACT
    assert len(from_folder.probs) == n and (from_folder.labels == -1).all()   # no class folders: not scored


def test_every_input_kind_gives_the_same_probabilities(real: RealRuns, tmp_path: Path) -> None:
    run = load_run(real.base)
    images = real.test_images[:5]
    paths = [write_png(tmp_path / f"{i}.png", img) for i, img in enumerate(images)]
    reference = run.predict(torch.from_numpy(images))
    for given in (images, list(paths), [str(p) for p in paths], [Image.open(p) for p in paths]):
        assert np.abs(run.predict(given) - reference).max() < EXACT
    assert np.abs(run.predict(paths[0]) - reference[:1]).max() < EXACT        # one path
    assert np.abs(run.predict(images[0]) - reference[:1]).max() < EXACT       # one C x H x W array
    assert np.abs(run.predict(images, batch_size=2) - reference).max() < EXACT
    tta = run.predict(images, tta=True)
    mirrored = run.predict(np.ascontiguousarray(images[..., ::-1]))
    assert np.abs(tta - (reference + mirrored) / 2).max() < EXACT


def test_modes_and_sizes_decode_exactly_as_a_training_folder(real: RealRuns, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Grey, RGBA (translucent), palette, odd sizes, JPEG: the pixels predict sees are the pixels a
    training image folder of the same files gives (folder.py's loader, cache off)."""
    rng = np.random.default_rng(3)
    root = tmp_path / "folder"
    made = []
    for k, (mode, size, suffix) in enumerate([("RGB", (37, 23), ".png"), ("L", (16, 16), ".png"),
                                              ("L", (9, 40), ".jpg"), ("RGBA", (20, 20), ".png"),
                                              ("P", (31, 17), ".png"), ("RGB", (64, 48), ".jpg"),
                                              ("LA", (16, 16), ".png"), ("I;16", (18, 18), ".png")]):
        cls = ["a", "b"][k % 2]
        bands = len(Image.new(mode, (1, 1)).getbands())
        if mode == "I;16":
            img = Image.fromarray(rng.integers(0, 65535, size=size[::-1], dtype=np.uint16))
        elif mode == "P":
            img = Image.fromarray(rng.integers(0, 256, size=(*size[::-1], 3), dtype=np.uint8)).quantize(64)
        else:
            arr = rng.integers(0, 256, size=(*size[::-1], bands), dtype=np.uint8)
            img = Image.fromarray(arr[..., 0] if bands == 1 else arr, mode)
        path = root / cls / f"{k}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path)
        assert Image.open(path).mode == mode
        made.append(path)
    listing = find_image_files([root])
    assert sorted(listing.files) == sorted(str(p) for p in made) and set(listing.groups) == {"a", "b"}
    ours = decode_files(listing.files, IMAGE_SIZE)
    assert ours.ok.all() and ours.images.shape == (len(made), 3, IMAGE_SIZE, IMAGE_SIZE)
    monkeypatch.setenv("CNNLAB_DECODE_CACHE", "off")
    training = load_image_folder(root, IMAGE_SIZE, [1.0, 0, 0], seed=0).train
    by_path = dict(zip(training.paths, training.images.numpy()))
    for path, pixels in zip(listing.files, ours.images):
        assert np.array_equal(pixels, by_path[path]), path
    run = load_run(real.base)
    assert np.abs(run.predict(listing.files) - run.predict(ours.images)).max() < EXACT


def test_binary_sigmoid_run_gives_two_columns(real: RealRuns, tmp_path: Path) -> None:
    run = load_run(real.binary)
    raw = read_predictions(real.binary)["test"].probs
    assert raw.shape[1] == 1   # the run's one-logit head
    images = run.splits.test.images.numpy()
    probs = run.predict([write_png(tmp_path / f"{i}.png", img) for i, img in enumerate(images)])
    assert probs.shape == (len(images), 2) and run.classes == CLASS_NAMES[:2]
    assert np.abs(probs[:, 1] - raw[:, 0]).max() < EXACT and np.allclose(probs.sum(1), 1)
    result = predict_files(run, [tmp_path])
    assert result.top(5)[0][0][1] == pytest.approx(float(probs[0].max()), abs=EXACT)  # top-k stops at K = 2


def test_bad_inputs_name_the_problem(real: RealRuns, tmp_path: Path) -> None:
    run = load_run(real.base)
    images = real.test_images[:2]
    with pytest.raises(ValueError, match="uint8"):
        run.predict(images.astype(np.float32) / 255)
    with pytest.raises(ValueError, match=r"N x 3 x 16 x 16 .* got \(2, 3, 8, 8\)"):
        run.predict(images[:, :, :8, :8])
    with pytest.raises(ValueError, match="looks like N x H x W x C"):
        run.predict(np.ascontiguousarray(images.transpose(0, 2, 3, 1)))
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(UnreadableImageError, match="broken.png") as caught:
        run.predict([bad])
    assert isinstance(caught.value, OSError)
    with pytest.raises(ValueError, match="no images given"):
        run.predict([])
    with pytest.raises(ValueError, match="choose one of train, val, test"):
        run.evaluate("holdout")


def test_evaluate_run_and_runs_table_still_work(real: RealRuns) -> None:
    summary = json.loads((real.base / "summary.json").read_text())
    res = evaluate_run(real.base, "test")
    assert res["images"] == len(real.test_images)
    assert res["accuracy"] == pytest.approx(summary["final"]["test_acc"])
    assert res["loss"] == pytest.approx(summary["final"]["test_loss"], rel=1e-5)
    assert real.base.name in runs_table(real.root)


# --- files, folders, failures -------------------------------------------------------------------------


def class_folder(real: RealRuns, root: Path) -> Path:
    """root/<class>/<i>.png holding the base run's test images, each in its true class's folder."""
    _, labels = saved_test(real.base)
    for i, (img, label) in enumerate(zip(real.test_images, labels)):
        write_png(root / CLASS_NAMES[label] / f"{i:03d}.png", img)
    return root


def test_a_folder_of_class_folders_is_scored(real: RealRuns, tmp_path: Path) -> None:
    run = load_run(real.base)
    result = predict_files(run, [class_folder(real, tmp_path / "labelled")])
    expected, labels = saved_test(real.base)
    assert result.scored.all() and sorted(result.labels.tolist()) == sorted(labels.tolist())
    metrics = result.metrics
    reference = classification_metrics(expected, labels, CLASS_NAMES)
    summary = json.loads((real.base / "summary.json").read_text())
    assert metrics["accuracy"] == pytest.approx(summary["final"]["test_acc"])
    assert metrics["confusion_matrix"] == reference["confusion_matrix"]
    assert [r["support"] for r in metrics["per_class"]] == [int((labels == k).sum()) for k in range(3)]


def test_cli_predict_lists_corrupt_files_and_writes_outputs(real: RealRuns, tmp_path: Path, capsys) -> None:
    root = class_folder(real, tmp_path / "labelled")
    (root / "cat" / "truncated.png").write_bytes((root / "cat" / "000.png").read_bytes()[:40])
    (root / "dog" / "notes.jpg").write_text("not an image")
    (root / "horse").mkdir()
    write_png(root / "horse" / "h.png", real.test_images[0])     # a folder that is no class of the run
    n = len(real.test_images)

    args = parse("predict", str(real.base), str(root), "--top-k", "2", "--out", str(tmp_path / "p.json"))
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "2 file(s) could not be read (skipped):" in out
    assert f"{root / 'cat' / 'truncated.png'}:" in out and f"{root / 'dog' / 'notes.jpg'}: cannot identify" in out
    assert "not scored: folder(s) horse are not classes of this run" in out
    assert f"on {n} images in class folders" in out and "confusion matrix" in out
    doc = json.loads((tmp_path / "p.json").read_text())
    assert len(doc["predictions"]) == n + 1 and {f["path"] for f in doc["failed"]} == {
        str(root / "cat" / "truncated.png"), str(root / "dog" / "notes.jpg")}
    assert all(len(p["top"]) == 2 for p in doc["predictions"]) and doc["metrics"]["n"] == n
    assert not list(tmp_path.glob(".*.tmp"))   # written through a temporary file, renamed

    args = parse("predict", str(real.base), str(root / "cat"), str(root / "missing.png"), "--out",
                 str(tmp_path / "p.csv"), "--tta")
    assert args.func(args) == 1   # missing.png was named on the command line: exit 1, the others predicted
    rows = list(csv.reader(io.StringIO((tmp_path / "p.csv").read_text())))
    assert rows[0] == "path,true_label,pred_label,class_1,prob_1,class_2,prob_2,class_3,prob_3,error".split(",")
    assert all(r[2] == r[3] for r in rows[1:] if r[2])   # pred_label is the top class
    errors = {r[0]: r[-1] for r in rows[1:] if r[-1]}
    assert len(rows) == 1 + len(errors) + sum(1 for r in rows[1:] if r[2])
    assert set(errors) == {str(root / "cat" / "truncated.png"), str(root / "missing.png")}
    assert errors[str(root / "missing.png")] == "no such file or folder"

    args = parse("predict", str(real.base), str(root), "--out", str(tmp_path / "p.txt"))
    with pytest.raises(ValueError, match="name the file .csv or .json"):
        args.func(args)
    assert not (tmp_path / "p.txt").exists()


def test_cli_predict_prints_top_k_per_file(real: RealRuns, tmp_path: Path, capsys) -> None:
    files = [write_png(tmp_path / f"{i}.png", img) for i, img in enumerate(real.test_images[:3])]
    args = parse("predict", str(real.base), *map(str, files), "--top-k", "1")
    assert args.func(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    expected, _ = saved_test(real.base)
    for line, path, probs in zip(lines, files, expected):
        name, value = line.split()[1:3]
        assert line.startswith(str(path)) and name == CLASS_NAMES[int(probs.argmax())]
        assert float(value) == pytest.approx(float(probs.max()), abs=1e-4)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no image files found"):
        args = parse("predict", str(real.base), str(empty))
        args.func(args)
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "x.png").write_text("nope")
    with pytest.raises(ValueError, match="none of the 1 file"):
        args = parse("predict", str(real.base), str(only_bad))
        args.func(args)


def test_an_unfinished_run_is_refused_with_the_fix(real: RealRuns, tmp_path: Path) -> None:
    run_dir = copy_run(real.base, tmp_path)
    (run_dir / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="cnnlab train --resume"):
        load_run(run_dir)
    shutil.rmtree(run_dir)


def test_cli_predict_exit_codes_and_messages(cifar_run, tmp_path: Path, capsys) -> None:
    """A file named on the command line that is missing or unreadable: exit 1 naming it; bad files
    inside a folder: skipped with a count, exit 0; --top-k above the class count says so."""
    from cnnlab.cli import main

    run_dir, images = cifar_run
    good = write_png(tmp_path / "good.png", images[0])
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    assert main(["predict", str(run_dir), str(good), "--device", "cpu"]) == 0
    capsys.readouterr()

    assert main(["predict", str(run_dir), str(good), str(tmp_path / "missing.png"), "--device", "cpu"]) == 1
    out, err = capsys.readouterr()
    assert str(good) in out   # the readable one is still predicted
    assert f"{tmp_path / 'missing.png'}: no such file or folder" in err and "named on the command line" in err

    assert main(["predict", str(run_dir), str(good), str(bad), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: cannot identify" in err

    folder = tmp_path / "folder"
    write_png(folder / "a.png", images[1])
    (folder / "b.png").write_text("nope")
    assert main(["predict", str(run_dir), str(folder), "--device", "cpu"]) == 0
    assert "1 file(s) could not be read (skipped):" in capsys.readouterr().out

    assert main(["predict", str(run_dir), str(good), "--top-k", "50", "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert "--top-k 50 is more than this run's 10 classes; showing all 10" in err
    assert len(out.split()) == 1 + 2 * 10


def test_predict_reads_a_presplit_root_as_training_does(cifar_run, tmp_path: Path) -> None:
    run_dir, images = cifar_run
    run = load_run(run_dir)
    for split, i in (("train", 0), ("test", 1)):
        write_png(tmp_path / "root" / split / run.classes[3] / f"{i}.png", images[i])
    result = predict_files(run, [tmp_path / "root"])
    assert len(result.files) == 2 and list(result.labels) == [3, 3] and not result.unscored_folders
    assert repr(result).startswith("FilePredictions(2 file(s), 10 classes, accuracy ")
    with pytest.raises(ValueError, match="is a folder; run.predict takes images or image files"):
        run.predict([tmp_path / "root"])
