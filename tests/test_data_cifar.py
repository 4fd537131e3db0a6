"""CIFAR pickle reading on tiny generated folders; structure errors; splits and subsets."""
import pickle

import numpy as np
import pytest
import torch
from data_helpers import make_cifar10, make_cifar100

from cnnlab.data import DataConfig, DataError, find_data_dir, load_splits
from cnnlab.data.cifar import load_cifar


@pytest.fixture(autouse=True)
def isolated_lookup(monkeypatch, tmp_path):
    """No test may find the user's real cache or $CNNLAB_DATA."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)


def test_cifar10_reads_pixels_in_publisher_layout(tmp_path):
    folder = make_cifar10(tmp_path, per_batch=20, test=10)
    train, test = load_cifar(folder, "cifar10")
    assert train.images.shape == (100, 3, 32, 32) and test.images.shape == (10, 3, 32, 32)
    assert train.images.dtype == torch.uint8 and train.images.is_contiguous()
    assert train.classes == [f"class{i}" for i in range(10)]
    with open(folder / "data_batch_2", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    row = raw[b"data"][3]  # image 23 of the train split: batch 2, row 3
    img = train.images[23]
    assert img[0, 0, 1] == row[1] and img[1, 0, 0] == row[1024] and img[2, 31, 31] == row[3071]
    assert img[0, 2, 5] == row[2 * 32 + 5]  # row-major inside each plane
    assert train.labels[23] == raw[b"labels"][3]
    assert torch.equal(train.indices, torch.arange(100))


@pytest.mark.parametrize("mode, n_classes", [("fine", 100), ("coarse", 20)])
def test_cifar100_fine_and_coarse(tmp_path, mode, n_classes):
    make_cifar100(tmp_path, train=200, test=100)
    splits = load_splits(DataConfig(name="cifar100", label_mode=mode, download=False), 0, str(tmp_path))
    assert len(splits.classes) == n_classes and len(splits.train) == 200 and len(splits.test) == 100
    assert int(splits.train.labels.max()) == n_classes - 1
    assert splits.classes[1] == f"{mode}1"


def test_data_dir_may_be_the_dataset_folder_itself_or_come_from_env(tmp_path, monkeypatch):
    folder = make_cifar10(tmp_path / "x")
    assert find_data_dir("cifar10", str(folder)) == folder
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "x"))
    assert find_data_dir("cifar10") == folder


def test_missing_file_is_named(tmp_path):
    folder = make_cifar10(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3"):
        load_splits(DataConfig(download=False), 0, str(tmp_path))


def test_corrupt_file_is_named(tmp_path):
    folder = make_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(b"\x80\x02garbage that is no pickle")
    with pytest.raises(DataError, match="test_batch"):
        load_splits(DataConfig(download=False), 0, str(tmp_path))


def test_pickle_with_foreign_globals_is_refused(tmp_path):
    folder = make_cifar10(tmp_path)
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": pickle.Pickler}, f, protocol=2)
    with pytest.raises(DataError, match="data_batch_1.*not allowed"):
        load_splits(DataConfig(download=False), 0, str(tmp_path))


@pytest.mark.parametrize("field, value, match", [
    ("data", np.zeros((20, 3000), np.uint8), "3072"),
    ("data", np.zeros((20, 3072), np.float32), "uint8"),
    ("labels", [0] * 19, "19 entries"),
    ("labels", [0] * 19 + [10], "outside 0..9"),
])
def test_bad_structure_names_the_file(tmp_path, field, value, match):
    folder = make_cifar10(tmp_path, per_batch=20)
    with open(folder / "data_batch_4", "rb") as f:
        d = pickle.load(f, encoding="bytes")
    d[field.encode()] = value
    with open(folder / "data_batch_4", "wb") as f:
        pickle.dump(d, f, protocol=2)
    with pytest.raises(DataError, match=f"data_batch_4.*{match}"):
        load_splits(DataConfig(download=False), 0, str(tmp_path))


def test_not_found_without_download_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError) as e:
        load_splits(DataConfig(download=False), 0, str(tmp_path / "nowhere"))
    msg = str(e.value)
    assert "cifar-10-batches-py" in msg and str(tmp_path / "nowhere") in msg and "CNNLAB_DATA" in msg
    assert "unpack.py cifar10" in msg


def test_val_carve_is_stratified_disjoint_and_seeded(tmp_path):
    make_cifar10(tmp_path, per_batch=40, test=20)  # 200 train, 20 per class
    cfg = DataConfig(val_size=0.25, download=False)
    a = load_splits(cfg, 0, str(tmp_path))
    assert len(a.val) == 50 and len(a.train) == 150
    assert a.val.class_counts() == [5] * 10 and a.train.class_counts() == [15] * 10
    assert not set(a.val.indices.tolist()) & set(a.train.indices.tolist())
    assert sorted(a.val.indices.tolist() + a.train.indices.tolist()) == list(range(200))
    # the carved images really are those source positions
    full = load_splits(DataConfig(download=False), 0, str(tmp_path)).train
    assert torch.equal(a.val.images, full.images[a.val.indices])
    assert torch.equal(load_splits(cfg, 0, str(tmp_path)).val.indices, a.val.indices)
    assert not torch.equal(load_splits(cfg, 1, str(tmp_path)).val.indices, a.val.indices)
    assert len(load_splits(DataConfig(val_size=30, download=False), 0, str(tmp_path)).val) == 30


def test_subsets_are_stratified_exact_and_seeded(tmp_path):
    make_cifar10(tmp_path, per_batch=40, test=40)
    cfg = DataConfig(val_size=50, train_subset=37, test_subset=20, download=False)
    s = load_splits(cfg, 3, str(tmp_path))
    assert len(s.train) == 37 and len(s.test) == 20
    counts = s.train.class_counts()
    assert sum(counts) == 37 and max(counts) - min(counts) <= 1  # largest remainder over equal classes
    assert s.test.class_counts() == [2] * 10
    assert not set(s.train.indices.tolist()) & set(s.val.indices.tolist())  # subset taken after the carve
    again = load_splits(cfg, 3, str(tmp_path))
    assert torch.equal(again.train.indices, s.train.indices) and torch.equal(again.test.indices, s.test.indices)
    assert not torch.equal(load_splits(cfg, 4, str(tmp_path)).train.indices, s.train.indices)


def test_subset_proportional_on_unbalanced_labels():
    from cnnlab.data.stratify import largest_remainder, stratified_split
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    chosen, rest = stratified_split(labels, 10, 3, 0, "t", "k")
    assert torch.bincount(labels[chosen], minlength=3).tolist() == [6, 3, 1]
    assert len(rest) == 90
    assert largest_remainder(10, [1, 1, 1]) == [4, 3, 3] and sum(largest_remainder(7, [5, 3, 9])) == 7


def test_too_large_subset_is_an_error(tmp_path):
    make_cifar10(tmp_path, per_batch=4, test=10)
    with pytest.raises(DataError, match="train_subset"):
        load_splits(DataConfig(train_subset=1000, download=False), 0, str(tmp_path))
    with pytest.raises(DataError, match="val_size"):
        load_splits(DataConfig(val_size=20, download=False), 0, str(tmp_path))


def test_subset_fractions_and_the_one_rule_at_load_time(tmp_path):
    make_cifar10(tmp_path, per_batch=40, test=40)  # 200 train, 40 test
    s = load_splits(DataConfig(val_size=0.1, train_subset=0.5, test_subset=0.25, download=False), 0, str(tmp_path))
    assert (len(s.val), len(s.train), len(s.test)) == (20, 90, 10)
    # A config changed after validation still meets the same rule where the value is used:
    # 1.0 is never "one image" (it used to give a 1-image val split).
    cfg = DataConfig(download=False)
    cfg.val_size = 1.0
    with pytest.raises(DataError, match="data.val_size: 1.0 is not allowed: a fraction must be below 1"):
        load_splits(cfg, 0, str(tmp_path))
    cfg = DataConfig(download=False)
    cfg.test_subset = 10.0
    with pytest.raises(DataError, match="data.test_subset: 10.0 .*write an integer count"):
        load_splits(cfg, 0, str(tmp_path))
