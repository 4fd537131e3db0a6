"""Features saved beside a real run: written once, reused while the weights stay, recomputed when they change."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from cnnlab.atomic import stale_temp_files
from cnnlab.features.cache import cached_features, features_path
from cnnlab.runs import load_run
from report_fixtures import copy_run, real_runs


@pytest.fixture()
def run_dir(tmp_path, tmp_path_factory):
    return copy_run(real_runs(tmp_path_factory).base, tmp_path)


class NoModel:
    """A run handle whose model and data must not be touched (a cache hit needs neither)."""

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.weights_path = run_dir / "model.safetensors"   # what load_run knows before loading anything

    def __getattr__(self, name):
        if name in ("model", "normalizer", "splits", "split", "config", "classes"):
            raise AssertionError(f"the cache hit touched run.{name}")
        raise AttributeError(name)


def test_features_are_saved_with_labels_and_indices_and_reused(run_dir):
    run = load_run(run_dir)
    first = cached_features(run, "pre_logits", "test")
    path = run_dir / "features" / "pre_logits" / "test.npz"
    assert first.computed and first.path == path and path.is_file()
    test = run.splits.test
    with np.load(path) as saved:
        # the tiny model's 4 filters, 8 x 8 after pooling
        assert saved["features"].dtype == np.float32 and saved["features"].shape == (len(test), 4 * 8 * 8)
        np.testing.assert_array_equal(saved["labels"], test.labels.numpy())
        np.testing.assert_array_equal(saved["indices"], test.indices.numpy())
    mtime = path.stat().st_mtime_ns
    again = cached_features(NoModel(run_dir), "pre_logits", "test")
    assert not again.computed and path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(again.features, first.features)
    assert not stale_temp_files(run_dir)


def test_new_weights_are_noticed_and_the_features_recomputed(run_dir):
    cached_features(load_run(run_dir), "features.pool1", "val")
    path = features_path(run_dir, "features.pool1", "val")
    before = np.load(path)["features"]
    weights = run_dir / "model.safetensors"
    stat = weights.stat()
    state = load_file(weights)
    state = {k: v + 0.5 if k.endswith("weight") else v for k, v in state.items()}
    save_file(state, weights)
    # The key is the file's mtime and size: make the change visible on any file-system clock.
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="touched run"):  # stale cache: it has to load the model
        cached_features(NoModel(run_dir), "features.pool1", "val")
    after = cached_features(load_run(run_dir), "features.pool1", "val")
    assert after.computed and not np.allclose(after.features, before)
    assert not cached_features(NoModel(run_dir), "features.pool1", "val").computed


def test_recompute_and_a_damaged_file_are_rewritten(run_dir):
    run = load_run(run_dir)
    cached_features(run, "features", "train")
    path = features_path(run_dir, "features", "train")
    assert cached_features(run, "features", "train", recompute=True).computed
    path.write_bytes(b"not an npz")
    fresh = cached_features(run, "features", "train")
    assert fresh.computed and len(fresh) == len(run.splits.train)


def test_bad_names_and_missing_weights(run_dir):
    with pytest.raises(ValueError, match="not a module name"):
        features_path(run_dir, "../../etc", "test")
    run = load_run(run_dir)
    with pytest.raises(ValueError, match="unknown layer 'nope'.*features.pool1"):
        cached_features(run, "nope", "test")
    assert not (run_dir / "features" / "nope").exists()
    (run_dir / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="cnnlab train --resume"):
        cached_features(run, "features", "test")
    torch.manual_seed(0)  # keep the global RNG use of other tests independent of this one
