"""Image-folder layouts: pre-split roots (train/ val/ test/ of class folders) are read as given,
and roots that only look like one (classes named like splits, unlabelled splits) are refused."""
import pytest
import torch
from PIL import Image

from cnnlab.data import DataConfig, DataError, load_splits
from cnnlab.data.folder import detect_layout

COLOURS = {"cats": (200, 30, 30), "dogs": (30, 30, 200), "birds": (30, 200, 30)}


@pytest.fixture(autouse=True)
def private_decode_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_DECODE_CACHE", str(tmp_path / "decode-cache"))


def make_split(root, split, counts):
    """root/split/<class>/<split>_<i>.png: a flat class colour; blue channel = file number,
    green = split code, so every image says where it came from."""
    code = {"train": 0, "val": 1, "validation": 1, "valid": 1, "test": 2}.get(split.lower(), 3)
    for name, n in counts.items():
        d = root / split / name
        d.mkdir(parents=True, exist_ok=True)
        r = COLOURS[name][0]
        for i in range(n):
            Image.new("RGB", (12, 10), (r, code * 50, i)).save(d / f"{split}_{i:02d}.png")
    return root


def cfg(root, **kw):
    return DataConfig(name="folder", root=str(root), image_size=8, **kw)


def test_presplit_root_is_read_as_given(tmp_path):
    root = tmp_path / "pets"
    make_split(root, "train", {"cats": 6, "dogs": 5})
    make_split(root, "val", {"cats": 2, "dogs": 3})
    make_split(root, "test", {"cats": 4, "dogs": 1})
    # folder_split would take 2/1/1 per class from a root of class folders; a pre-split root ignores it.
    s = load_splits(cfg(root, folder_split=[2, 1, 1]), 0)
    assert s.classes == ["cats", "dogs"]
    assert (s.train.class_counts(), s.val.class_counts(), s.test.class_counts()) == ([6, 5], [2, 3], [4, 1])
    assert s.train.images.shape == (11, 3, 8, 8)
    for split, ds, code in (("train", s.train, 0), ("val", s.val, 1), ("test", s.test, 2)):
        assert all(f"/{split}/{ds.classes[y]}/" in p for p, y in zip(ds.paths, ds.labels.tolist()))
        assert (ds.images[:, 1, 4, 4] == code * 50).all()   # every image came from its own split folder
        assert ds.indices.tolist() == list(range(len(ds)))


def test_validation_carved_from_train_when_the_root_has_none(tmp_path):
    root = tmp_path / "pets"
    make_split(root, "Train", {"cats": 10, "dogs": 10, "birds": 10})   # split names are case-insensitive
    make_split(root, "test", {"cats": 2, "dogs": 2, "birds": 2})
    none = load_splits(cfg(root), 0)
    assert none.val is None and len(none.train) == 30 and len(none.test) == 6
    s = load_splits(cfg(root, val_size=6), 0)
    assert s.classes == ["birds", "cats", "dogs"]
    assert s.val.class_counts() == [2, 2, 2] and s.train.class_counts() == [8, 8, 8]   # stratified
    assert not set(s.val.paths) & set(s.train.paths)
    assert torch.equal(load_splits(cfg(root, val_size=6), 0).val.indices, s.val.indices)   # seeded
    assert not torch.equal(load_splits(cfg(root, val_size=6), 1).val.indices, s.val.indices)
    frac = load_splits(cfg(root, val_size=0.2, train_subset=12), 0)
    assert len(frac.val) == 6 and frac.train.class_counts() == [4, 4, 4]


@pytest.mark.parametrize("val_name", ["validation", "valid"])
def test_other_names_of_the_validation_folder(tmp_path, val_name):
    root = make_split(tmp_path / "r", "train", {"cats": 3, "dogs": 3})
    make_split(root, val_name, {"cats": 1, "dogs": 2})
    s = load_splits(cfg(root), 0)
    assert s.val.class_counts() == [1, 2] and s.test is None
    assert detect_layout(root).splits["val"] == root / val_name


def test_val_size_with_a_val_folder_or_a_root_of_classes_is_refused(tmp_path):
    root = make_split(tmp_path / "r", "train", {"cats": 3, "dogs": 3})
    make_split(root, "val", {"cats": 1, "dogs": 1})
    with pytest.raises(DataError, match=r"has its own val/ split; set data.val_size: 0"):
        load_splits(cfg(root, val_size=2), 0)
    classes_root = tmp_path / "r" / "train"
    with pytest.raises(DataError, match=r"folder_split"):
        load_splits(cfg(classes_root, val_size=2), 0)


def test_classes_named_like_splits_are_refused(tmp_path):
    """The issue's case: train/ and test/ holding images directly read as two classes 'train', 'test'."""
    root = tmp_path / "flat"
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (i, 0, 0)).save(root / split / f"{i}.png")
    with pytest.raises(DataError) as e:
        load_splits(cfg(root), 0)
    msg = str(e.value)
    assert "'test', 'train' are named like dataset splits" in msg and f"{root}/train/<class>/" in msg
    assert "\n" not in msg


def test_a_split_without_class_folders_is_refused(tmp_path):
    """Kaggle's layout: train/ sorted into classes, test/ unlabelled images."""
    root = make_split(tmp_path / "k", "train", {"cats": 2, "dogs": 2})
    (root / "test").mkdir()
    for i in range(4):
        Image.new("RGB", (8, 8)).save(root / "test" / f"{i}.jpg")
    with pytest.raises(DataError, match=r"test holds 4 image\(s\) but no class folders"):
        load_splits(cfg(root), 0)


def test_split_folders_mixed_with_class_folders_are_refused(tmp_path):
    root = make_split(tmp_path / "m", "train", {"cats": 2, "dogs": 2})
    make_split(root, "test", {"cats": 1, "dogs": 1})
    (root / "birds").mkdir()
    with pytest.raises(DataError, match=r"mixes split folders \(test, train\) with other folders \(birds\)"):
        load_splits(cfg(root), 0)


def test_missing_train_and_two_val_folders_are_refused(tmp_path):
    root = make_split(tmp_path / "a", "test", {"cats": 1, "dogs": 1})
    make_split(root, "val", {"cats": 1, "dogs": 1})
    with pytest.raises(DataError, match=r"no train/ folder"):
        load_splits(cfg(root), 0)
    root = make_split(tmp_path / "b", "train", {"cats": 1, "dogs": 1})
    make_split(root, "val", {"cats": 1, "dogs": 1})
    make_split(root, "validation", {"cats": 1, "dogs": 1})
    with pytest.raises(DataError, match=r"two val folders"):
        load_splits(cfg(root), 0)


def test_a_class_that_train_does_not_have_is_refused(tmp_path):
    root = make_split(tmp_path / "r", "train", {"cats": 2, "dogs": 2})
    make_split(root, "test", {"cats": 1, "birds": 1})
    with pytest.raises(DataError, match=r"class folder\(s\) birds that .*train/ does not have"):
        load_splits(cfg(root), 0)


def test_a_test_split_may_lack_a_class(tmp_path):
    root = make_split(tmp_path / "r", "train", {"birds": 2, "cats": 2, "dogs": 2})
    make_split(root, "test", {"dogs": 2})
    s = load_splits(cfg(root), 0)
    assert s.test.class_counts() == [0, 0, 2] and s.test.classes == ["birds", "cats", "dogs"]


def test_one_class_is_refused(tmp_path):
    root = make_split(tmp_path / "r", "train", {"cats": 3})
    with pytest.raises(DataError, match=r"one class folder \('cats'\); a classifier needs at least two"):
        load_splits(cfg(root), 0)
    with pytest.raises(DataError, match=r"one class folder"):
        load_splits(cfg(root / "train"), 0)


def test_tiny_imagenet_given_as_a_folder_gets_a_hint(tmp_path):
    root = make_split(tmp_path / "tiny-imagenet-200", "train", {"cats": 1, "dogs": 1})
    (root / "wnids.txt").write_text("cats\ndogs\n")
    with pytest.raises(DataError, match=r"set data.name: tiny_imagenet"):
        load_splits(cfg(root), 0)


def test_bad_image_in_a_presplit_test_split(tmp_path):
    root = make_split(tmp_path / "r", "train", {"cats": 2, "dogs": 2})
    make_split(root, "test", {"cats": 2, "dogs": 2})
    broken = root / "test" / "dogs" / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="data.bad_images: skip") as e:
        load_splits(cfg(root), 0)
    assert str(broken) in str(e.value)
    with pytest.warns(UserWarning, match="broken.jpg"):
        s = load_splits(cfg(root, bad_images="skip"), 0)
    assert s.test.class_counts() == [2, 2] and len(s.train) == 4
    assert s.test.indices.tolist() == [0, 1, 2, 3]


def test_presplit_train_too_small_for_the_val_count_gets_a_fraction_or_the_flag(tmp_path, capsys):
    """Issue 40, item 4: a val_size count meant for CIFAR (5000) on a small train/ folder."""
    root = tmp_path / "pets"
    make_split(root, "train", {"cats": 10, "dogs": 10, "birds": 10})
    make_split(root, "test", {"cats": 2, "dogs": 2, "birds": 2})
    s = load_splits(cfg(root, val_size=5000), 0)
    assert len(s.val) == 3 and len(s.train) == 27          # 10% of the 30, one per class
    err = capsys.readouterr().err
    assert "data.val_size 5000 is more than half" in err and "-o data.val_size=" in err
    tiny = tmp_path / "tiny"
    make_split(tiny, "train", {"cats": 2, "dogs": 2, "birds": 2})
    make_split(tiny, "test", {"cats": 1, "dogs": 1, "birds": 1})
    with pytest.raises(DataError, match="set -o data.val_size=0"):
        load_splits(cfg(tiny, val_size=5000), 0)
