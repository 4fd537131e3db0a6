"""Faults during a run: each gets a message naming the problem and the fix, and nothing is lost."""
import errno
import json
import os
import stat
import subprocess
import warnings

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from cnnlab.atomic import DiskFullError, write_atomically
from cnnlab.train.experiment import load_experiment
from cnnlab.models import register_model
from cnnlab.models.base import ClassifierModel
from cnnlab.train.checkpoint import CheckpointError, load_checkpoint, restore_generator, save_weights
from cnnlab.train.loop import TrainingDiverged, train
from engine_helpers import REPO, run_cli, tiny_overrides


def tiny_cfg(*extra: str, recipe: str = "004-a", **kw):
    return load_experiment(REPO / "recipes" / f"{recipe}.yaml", tiny_overrides(**kw) + list(extra))


class _InfGradNet(ClassifierModel):
    """Finite logits whose gradient is NaN: d/dz sqrt(z) at z = 0 is inf, times 0 gives NaN."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3):
        super().__init__()
        self.num_classes = num_classes
        self.fc = nn.Linear(in_chans * 32 * 32, num_classes)
        self.z = nn.Parameter(torch.zeros(()))

    def forward_features(self, x):
        return x.flatten(1)

    def forward_head(self, features, pre_logits=False):
        return self.fc(features) + 0.0 * torch.sqrt(self.z)


@pytest.fixture
def inf_grad_model():
    """Registered for one test only: the model list other tests walk stays the library's own."""
    from cnnlab.models import registry

    register_model("test_inf_grad_net", input_size=32)(_InfGradNet)
    yield "test_inf_grad_net"
    registry._REGISTRY.pop("test_inf_grad_net")


def test_non_finite_gradients_from_a_finite_loss_stop_before_the_step(tiny_cifar, tmp_path, inf_grad_model):
    cfg = tiny_cfg(f"model.name={inf_grad_model}", "model.kwargs={}", epochs=1)
    with pytest.raises(TrainingDiverged, match="NaN or infinite in epoch 1, step 1") as err:
        train(cfg, runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    assert "no checkpoint had been written yet" in str(err.value)   # and no claim of a file that is not there
    (run,) = tmp_path.iterdir()
    assert not (run / "checkpoints" / "last.pt").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "diverged"


def test_a_last_batch_of_one_image_is_dropped_so_batch_norm_heads_train(tiny_cifar, tmp_path):
    # 200 train images - 71 for validation = 129 = 2 x 64 + 1: the BatchNorm1d head of 000-c's
    # VGG16 cannot train on the last batch of one image.
    cfg = load_experiment(REPO / "recipes" / "004-a.yaml", tiny_overrides(
        epochs=1, batch_size=64, **{"data.val_size": 71, "model.name": "vgg16_cifar000c", "model.kwargs": "{}"}))
    lines = []
    result = train(cfg, runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lines.append)
    assert result.status == "completed" and result.summary["data"]["train"] == 129
    assert any("last batch of each epoch (1 image(s)) is dropped" in line for line in lines)
    with pytest.raises(ValueError, match="make no batch"):
        train(load_experiment(REPO / "recipes" / "004-a.yaml", tiny_overrides(batch_size=500, drop_last="true")),
              runs_dir=tmp_path / "b", data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)


def test_a_missing_logger_package_is_found_before_the_run_folder(tiny_cifar, tmp_path):
    pytest.importorskip("torch")
    try:
        import tensorboard  # noqa: F401
        pytest.skip("tensorboard is installed here; the test needs it absent")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="pip install tensorboard"):
        train(tiny_cfg("logging={tensorboard: true}"), runs_dir=tmp_path / "runs", data_dir=str(tiny_cifar),
              quiet=True, log=lambda s: None)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_weights_are_readable_by_others_and_temp_files_vanish(tmp_path):
    old = os.umask(0o022)
    try:
        save_weights(nn.Linear(2, 2), tmp_path / "w.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "w.safetensors").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        write_atomically(target, broken)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB file system (tmpfs), where a large write fails with ENOSPC."""
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {proc.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_names_the_file_and_keeps_the_old_checkpoint(small_disk):
    target = small_disk / "model.safetensors"
    save_weights(nn.Linear(4, 4), target)
    before = target.read_bytes()
    with pytest.raises(DiskFullError, match="the disk is full: could not write .*model.safetensors") as err:
        save_weights(nn.Linear(1000, 1000), target)   # 4 MB of weights on a 1 MiB disk
    assert err.value.errno == errno.ENOSPC
    assert target.read_bytes() == before and [p.name for p in small_disk.iterdir()] == ["model.safetensors"]
    from cnnlab.train.checkpoint import save_checkpoint

    with pytest.raises(DiskFullError, match="last.pt"):
        save_checkpoint({"w": torch.zeros(1_000_000)}, small_disk / "last.pt")
    assert not (small_disk / "last.pt").exists()


class NotAllowedInCheckpoints:
    """Any Python object: unpickling it could run code."""


def test_a_pickled_checkpoint_is_refused_without_advice_to_unpickle_it(tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"format": 2, "obj": NotAllowedInCheckpoints()}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert "not a cnnlab checkpoint" in str(err.value) and "may contain code" in str(err.value)
    assert "weights_only=False" not in str(err.value)
    path.write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(CheckpointError, match="truncated or not a checkpoint"):
        load_checkpoint(path)


def test_a_generator_saved_on_another_device_type_is_reseeded_with_a_warning():
    cpu = torch.Generator().manual_seed(5)
    saved = {"device": "cuda", "state": cpu.get_state()}   # as a checkpoint written on a GPU records it
    target = torch.Generator()
    with pytest.warns(RuntimeWarning, match="re-seeded"):
        assert restore_generator(saved, target, "augment") is False
    again = torch.Generator()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        restore_generator(saved, again, "augment")
    assert torch.equal(torch.rand(4, generator=target), torch.rand(4, generator=again)), "re-seeding is deterministic"
    same = torch.Generator()
    assert restore_generator({"device": "cpu", "state": cpu.get_state()}, same, "augment") is True
    assert torch.equal(torch.rand(4, generator=same), torch.rand(4, generator=cpu))


def test_two_processes_cannot_train_in_one_run_folder(tiny_cifar, tmp_path):
    from cnnlab.train.rundir import RunLock, RunLocked

    first = train(tiny_cfg(epochs=1), runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    (first.run_dir / "summary.json").unlink()   # make it resumable
    (first.run_dir / "model.safetensors").unlink()
    with RunLock(first.run_dir):
        proc = run_cli("train", "--resume", str(first.run_dir), "--data-dir", str(tiny_cifar), "-q", "--no-report")
        assert proc.returncode == 1 and "is being trained by another process" in proc.stderr
        with pytest.raises(RunLocked):
            with RunLock(first.run_dir):
                pass
    proc = run_cli("train", "--resume", str(first.run_dir), "--data-dir", str(tiny_cifar), "-q", "--no-report")
    assert proc.returncode == 0, proc.stderr


def test_the_resume_hint_carries_the_data_folder(tiny_cifar, tmp_path):
    class StopAfterFirstBatch:
        def on_train_begin(self, logs): ...
        def on_epoch_begin(self, epoch, logs): ...
        def on_epoch_end(self, epoch, logs): ...
        def on_train_end(self, logs): ...

        def on_batch_end(self, step, logs):
            os.kill(os.getpid(), 2)   # SIGINT, as Ctrl-C

    result = train(tiny_cfg(epochs=1), runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None,
                   callbacks=[StopAfterFirstBatch()])
    assert result.status == "interrupted"
    assert f"cnnlab train --resume {result.run_dir} --data-dir {tiny_cifar}" in result.summary["message"]


def test_an_unwritable_runs_folder_is_found_before_the_data_loads(tmp_path):
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("a file where the runs folder should be")
        runs = blocker / "runs"
    else:
        runs = tmp_path / "ro" / "runs"
        (tmp_path / "ro").mkdir(mode=0o500)
    # No data anywhere: had the data loaded first, the error would be about the data.
    with pytest.raises(OSError, match="cannot write run folders under"):
        train(tiny_cfg(), runs_dir=runs, data_dir=str(tmp_path / "no-data"), quiet=True, log=lambda s: None)


def test_saved_normalization_excludes_the_validation_images(tiny_cifar, tmp_path):
    from cnnlab.data import load_splits
    from cnnlab.data.normalize import channel_stats

    cfg = tiny_cfg(epochs=1, **{"data.normalize": "per_channel", "data.val_size": 60})
    result = train(cfg, runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    saved = json.loads((result.run_dir / "normalization.json").read_text())
    splits = load_splits(cfg.data, seed=cfg.seed, data_dir=str(tiny_cifar))
    train_mean, _ = channel_stats(splits.train.images)
    all_mean, _ = channel_stats(torch.cat([splits.train.images, splits.val.images]))
    saved_mean = torch.tensor(saved["mean"], dtype=torch.float64)
    assert torch.allclose(saved_mean, train_mean.double(), atol=1e-4)
    assert not torch.allclose(saved_mean, all_mean.double(), atol=1e-3), "val images changed the stats"
    assert saved["fitted_on"] == "the train split only (140 images)"
    ckpt = torch.load(result.run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert torch.allclose(ckpt["normalizer"]["mean"].double(), train_mean.double(), atol=1e-4)
