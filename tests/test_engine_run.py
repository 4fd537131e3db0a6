"""End-to-end runs on tiny generated CIFAR-format data: the run folder, determinism, errors."""
import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from cnnlab.train.callbacks import Callback
from cnnlab.train.experiment import experiment_from_dict, load_experiment
from cnnlab.train.loop import TrainingDiverged, train
from engine_helpers import REPO, tiny_overrides


def tiny_cfg(*extra: str, recipe: str = "004-a", **kw):
    return load_experiment(REPO / "recipes" / f"{recipe}.yaml", tiny_overrides(**kw) + list(extra))


def test_run_folder_has_everything(tiny_cifar, tmp_path):
    from cnnlab.pipeline import run_experiment

    cfg = tiny_cfg(recipe="004-d", epochs=3, **{"data.normalize": "zscore"})
    result = run_experiment(cfg, runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None,
                            report=False)
    run = result.run_dir
    assert result.status == "completed" and run.parent == tmp_path and run.name.endswith("-004-d")
    assert "Total params: 82,346" in (run / "model_summary.txt").read_text()
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "model.safetensors", "curves.png",
                 "checkpoints/last.pt", "predictions/test.npz", "predictions/train.npz", "predictions/val.npz"):
        assert (run / name).is_file(), name
    # the saved config is the resolved one and reloads to the same experiment
    assert experiment_from_dict(yaml.safe_load((run / "config.yaml").read_text())) == cfg
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert set(r) >= {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_sec"}
        assert 0 <= r["val_acc"] <= 1 and r["images_per_sec"] > 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 3
    assert summary["params"]["total"] == 82346 and summary["params"]["trainable"] == 81962
    assert summary["data"] == {"train": 180, "val": 20, "test": 100}
    assert 0 <= summary["final"]["test_acc"] <= 1 and summary["versions"]["torch"] == torch.__version__
    preds = np.load(run / "predictions" / "test.npz")
    assert preds["probs"].shape == (100, 10) and np.allclose(preds["probs"].sum(1), 1, atol=1e-5)
    acc = (preds["probs"].argmax(1) == preds["labels"]).mean()
    assert acc == pytest.approx(summary["final"]["test_acc"])
    with Image.open(run / "curves.png") as im:
        assert im.size[0] > 200 and im.size[1] > 100
    # the tiny data is learnable: the engine actually trains
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert summary["final"]["test_acc"] > 0.3


def weights_of(run_dir):
    return load_file(str(run_dir / "model.safetensors"))


def test_same_seed_same_weights_other_seed_differs(tiny_cifar, tmp_path):
    aug = ["augment.hflip=true", "augment.rotation=10", "augment.crop_padding=2"]
    runs = [train(tiny_cfg(*aug, seed=s), runs_dir=tmp_path / str(i), data_dir=str(tiny_cifar), quiet=True,
                  log=lambda s: None).run_dir for i, s in enumerate([3, 3, 4])]
    a, b, c = (weights_of(r) for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tiny_cifar, tmp_path):
    # SGD with an absurd LR overflows the weights within the second epoch; the run must stop
    # with a message, and keep the checkpoint and metrics of the last finished epoch.
    cfg = tiny_cfg("optimizer.name=sgd", "optimizer.lr=1.0e+12", "data.normalize=none", epochs=4)
    with pytest.raises(TrainingDiverged, match="NaN or infinite") as err:
        train(cfg, runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    run = next(tmp_path.iterdir())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "diverged" and "optimizer.lr" in str(err.value)
    if summary["epochs_completed"]:
        ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
        assert ckpt["epoch"] == summary["epochs_completed"]
        assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert not (run / "model.safetensors").exists()


def test_binary_head_on_two_classes(tmp_path):
    from engine_helpers import learnable_images
    from PIL import Image as PILImage

    rng = np.random.default_rng(0)
    for k, name in enumerate(["cats", "dogs"]):
        (tmp_path / "pets" / name).mkdir(parents=True)
        imgs = learnable_images(np.full(30, k), rng, 2).reshape(30, 3, 32, 32).transpose(0, 2, 3, 1)
        for i, im in enumerate(imgs):
            PILImage.fromarray(im).save(tmp_path / "pets" / name / f"{i}.png")
    cfg = load_experiment(None, tiny_overrides(**{"data.val_size": 0}) + [
        "data.name=folder", f"data.root={tmp_path / 'pets'}", "data.folder_split=[18, 6, 6]",
        "model.name=cnn004", "model.kwargs={num_classes: 1}", "optimizer.name=rmsprop", "optimizer.lr=0.001"])
    result = train(cfg, runs_dir=tmp_path / "runs", quiet=True, log=lambda s: None)
    preds = np.load(result.run_dir / "predictions" / "test.npz")
    assert preds["probs"].shape == (12, 1) and ((preds["probs"] >= 0) & (preds["probs"] <= 1)).all()
    assert result.summary["final"]["test_acc"] is not None


def test_class_count_mismatch_is_an_error(tiny_cifar, tmp_path):
    with pytest.raises(ValueError, match="labels would be out of range"):
        train(tiny_cfg("model.kwargs={num_classes: 5}"), runs_dir=tmp_path, data_dir=str(tiny_cifar),
              quiet=True, log=lambda s: None)


def test_early_stopping_stops_after_patience(tiny_cifar, tmp_path):
    cfg = tiny_cfg("early_stopping.patience=1", "early_stopping.monitor=train_loss", "early_stopping.min_delta=100",
                   epochs=6)
    result = train(cfg, runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    assert result.status == "early_stopped" and result.summary["epochs_completed"] == 2


def test_ema_and_l2_and_schedule_run(tiny_cifar, tmp_path):
    cfg = tiny_cfg("regularization.ema=0.9", "regularization.l2=0.001", "regularization.grad_clip=1.0",
                   "schedule.name=onecycle", "regularization.label_smoothing=0.1", "optimizer.name=sgd",
                   "optimizer.lr=0.05", "optimizer.momentum=0.9", "optimizer.nesterov=true")
    result = train(cfg, runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    rows = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["lr"] != rows[1]["lr"]   # the schedule moved the LR
    assert result.status == "completed"
    # val_loss_total carries the L2 penalty of the weights evaluated (the EMA's, saved as the run's weights)
    from cnnlab.train.regularization import l2_kernels, l2_penalty
    from cnnlab.train.setup import build_model

    ema = build_model(cfg.model, num_classes=10)
    ema.load_state_dict(load_file(str(result.run_dir / "model.safetensors")))
    penalty = float(l2_penalty(l2_kernels(ema, cfg.regularization.l2_layers), 0.001).detach())
    assert rows[-1]["val_loss_total"] - rows[-1]["val_loss"] == pytest.approx(penalty, rel=1e-5)


def test_pretrained_from_a_run_folder(tiny_cifar, tmp_path):
    first = train(tiny_cfg(epochs=1), runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    from cnnlab.train.setup import build_model

    cfg = tiny_cfg(f"model.pretrained={first.run_dir}")
    model = build_model(cfg.model, num_classes=10)
    saved = weights_of(first.run_dir)
    assert all(torch.equal(model.state_dict()[k], saved[k]) for k in saved)


def test_flip_tta_adds_a_second_test_row(tiny_cifar, tmp_path):
    result = train(tiny_cfg("tta=true", epochs=1), runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True,
                   log=lambda s: None)
    tta = np.load(result.run_dir / "predictions" / "test_tta.npz")
    plain = np.load(result.run_dir / "predictions" / "test.npz")
    assert tta["probs"].shape == plain["probs"].shape and not np.allclose(tta["probs"], plain["probs"])
    assert result.summary["final"]["test_tta_acc"] == pytest.approx((tta["probs"].argmax(1) == tta["labels"]).mean())


def test_flip_translate_tta_scores_six_views_and_the_report_names_them(tiny_cifar, tmp_path):
    result = train(tiny_cfg("tta=flip+translate", epochs=1), runs_dir=tmp_path, data_dir=str(tiny_cifar),
                   quiet=True, log=lambda s: None)
    tta = np.load(result.run_dir / "predictions" / "test_tta.npz")
    assert result.summary["final"]["test_tta_acc"] == pytest.approx((tta["probs"].argmax(1) == tta["labels"]).mean())
    from cnnlab.runs import load_run

    run = load_run(result.run_dir, data_dir=str(tiny_cifar))
    images = run.splits.test.images
    np.testing.assert_allclose(run.predict(images, tta="flip+translate"), tta["probs"], atol=1e-5)
    assert not np.allclose(run.predict(images, tta=True), tta["probs"], atol=1e-4)
    from cnnlab.report.run_report import render_run_report
    from cnnlab.runfolder import load_run_data

    assert "| test (flip + translate TTA) |" in render_run_report(load_run_data(result.run_dir)).markdown


def test_a_bf16_runs_handle_scores_as_its_final_evaluation_did(tiny_cifar, tmp_path):
    result = train(tiny_cfg("tta=flip+translate", "precision=bf16", epochs=1), runs_dir=tmp_path,
                   data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    from cnnlab.runs import load_run

    run = load_run(result.run_dir, data_dir=str(tiny_cifar), device="cpu")
    assert run.eval_context().amp_dtype == torch.bfloat16   # the run's precision, not float32
    scored = run.evaluate("test", tta="flip+translate")
    final = result.summary["final"]
    assert scored["accuracy"] == pytest.approx(final["test_acc"]) and scored["tta"] == "flip+translate"
    assert scored["tta_accuracy"] == pytest.approx(final["test_tta_acc"])
    tta = np.load(result.run_dir / "predictions" / "test_tta.npz")
    # bf16 keeps ~3 significant digits and training ran its model channels-last: probabilities agree to 1e-3.
    np.testing.assert_allclose(run.predict(run.splits.test.images, tta="flip+translate"), tta["probs"], atol=2e-3)
    assert "tta_accuracy" not in run.evaluate("test")


def test_evaluate_train_off_skips_the_final_pass_over_train(tiny_cifar, tmp_path):
    result = train(tiny_cfg("evaluate_train=false", epochs=1), runs_dir=tmp_path, data_dir=str(tiny_cifar),
                   quiet=True, log=lambda s: None)
    final = result.summary["final"]
    assert final["train_loss"] is None and final["train_acc"] is None
    assert final["test_acc"] is not None and final["val_acc"] is not None
    assert not (result.run_dir / "predictions" / "train.npz").exists()
    assert (result.run_dir / "predictions" / "test.npz").is_file()


def test_unknown_tta_name_is_a_config_error():
    with pytest.raises(ValueError, match=r"flip\+translate"):
        tiny_cfg("tta=rotate")


class _WeightsPerEpoch(Callback):
    """Copies of the whitening bias and of the last conv's weights after each epoch."""

    def __init__(self):
        self.rows = []

    def on_train_begin(self, logs):
        self.model = logs["model"]
        self.rows.append(self._copy())

    def _copy(self):
        return (self.model.whiten.bias.detach().clone(), self.model.group3.conv2.weight.detach().clone())

    def on_epoch_end(self, epoch, logs):
        self.rows.append(self._copy())


def test_freeze_after_stops_a_module_training_after_its_epochs_and_the_rest_trains_on(tiny_cifar, tmp_path):
    seen = _WeightsPerEpoch()
    cfg = tiny_cfg("freeze_after={whiten: 1}", recipe="fast-cpu", epochs=3, **{"data.val_size": 0})
    train(cfg, runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None, callbacks=[seen])
    (b0, w0), (b1, w1), (b2, w2), (b3, w3) = seen.rows
    assert not torch.equal(b0, b1)                       # epoch 1 trains the bias
    assert torch.equal(b1, b2) and torch.equal(b2, b3)   # then it is frozen: no step, no momentum, no decay
    assert not torch.equal(w1, w2) and not torch.equal(w2, w3)


def test_freeze_after_names_unknown_modules_and_bad_epochs_before_any_run_folder(tiny_cifar, tmp_path):
    with pytest.raises(ValueError, match="freeze_after: no parameters under 'whitening'.*whiten"):
        train(tiny_cfg("freeze_after={whitening: 1}", recipe="fast-cpu", **{"data.val_size": 0}),
              runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="freeze_after.whiten: 0 epochs"):
        tiny_cfg("freeze_after={whiten: 0}", recipe="fast-cpu")
    with pytest.raises(ValueError, match="freeze_after.whiten: expected an integer"):
        tiny_cfg("freeze_after={whiten: two}", recipe="fast-cpu")


def test_unknown_logger_is_a_config_error_before_any_run_folder(tiny_cifar, tmp_path):
    with pytest.raises(ValueError, match="unknown logger"):
        train(tiny_cfg("logging={wandb: true}"), runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True,
              log=lambda s: None)
    assert not list(tmp_path.iterdir())


def test_deterministic_mode_is_on_during_the_run_recorded_and_restored_after(tiny_cifar, tmp_path):
    from cnnlab.train.callbacks import Callback

    class Seen(Callback):
        def on_train_begin(self, logs):
            self.flags = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads())

    seen = Seen()
    before = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads())
    result = train(tiny_cfg("deterministic=true", epochs=1, threads=2), runs_dir=tmp_path, data_dir=str(tiny_cifar),
                   quiet=True, log=lambda s: None, callbacks=[seen])
    assert seen.flags == (True, 2)
    assert (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()) == before == (False, 1)
    assert yaml.safe_load((result.run_dir / "config.yaml").read_text())["deterministic"] is True


def test_monitor_test_logs_test_accuracy_per_epoch_and_report_uses_it_for_milestones(tiny_cifar, tmp_path):
    from cnnlab.report.run_report import write_run_report

    cfg = tiny_cfg("monitor_test=true", epochs=2, **{"data.val_size": 0})
    result = train(cfg, runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(r["val_acc"] is None and 0 <= r["test_acc"] <= 1 and r["test_loss"] > 0 for r in rows)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert rows[-1]["test_acc"] == pytest.approx(summary["final"]["test_acc"])   # the same weights, scored twice
    write_run_report(result.run_dir)   # a run with test_acc and no val_acc reports without error
    # The milestone table falls back to the monitored test accuracy when there is no validation split.
    from types import SimpleNamespace

    from cnnlab.report.run_report import _milestones

    fake = [{"epoch": 1, "seconds": 10.0, "val_acc": None, "test_acc": 0.55},
            {"epoch": 2, "seconds": 10.0, "val_acc": None, "test_acc": 0.72}]
    paragraph, table = _milestones(SimpleNamespace(metrics=fake))
    assert "test (monitored" in paragraph.text and table.headers[0] == "test accuracy"
    assert table.rows[:3] == [["50%", "1", "10.0 s"], ["60%", "2", "20.0 s"], ["70%", "2", "20.0 s"]]
    assert _milestones(SimpleNamespace(metrics=[dict(r, test_acc=None) for r in fake])) == []


def test_without_monitor_test_no_test_metrics_per_epoch(tiny_cifar, tmp_path):
    cfg = tiny_cfg(epochs=1)
    result = train(cfg, runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    row = json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert "test_acc" not in row
