"""Image-folder loader on generated PNGs: exact per-class splits, bad images, determinism."""
import warnings

import pytest
import torch
from data_helpers import make_image_folder

from cnnlab.data import DataConfig, DataError, load_splits


@pytest.fixture(autouse=True)
def private_decode_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_DECODE_CACHE", str(tmp_path / "decode-cache"))


def cfg(**kw):
    return DataConfig(name="folder", **{"image_size": 8, **kw})


def test_counts_split_exact_per_class_and_resized(tmp_path):
    root = make_image_folder(tmp_path / "pets", {"cat": 12, "dog": 10})
    s = load_splits(cfg(root=str(root), folder_split=[6, 2, 2]), 0)
    assert s.classes == ["cat", "dog"]
    assert s.train.class_counts() == [6, 6] and s.val.class_counts() == [2, 2] and s.test.class_counts() == [2, 2]
    assert s.train.images.shape == (12, 3, 8, 8) and s.train.images.dtype == torch.uint8
    all_idx = torch.cat([s.train.indices, s.val.indices, s.test.indices]).tolist()
    assert len(set(all_idx)) == len(all_idx) == 20  # disjoint; 2 cat images left unused
    # content: the flat colour survives resizing; red encodes the class, green the file number
    for ds in (s.train, s.test):
        for img, label, path in zip(ds.images, ds.labels, ds.paths):
            assert int(img[0, 4, 4]) == int(label) * 10
            assert int(img[1, 4, 4]) == int(path[-7:-4])
            assert f"/{ds.classes[label]}/" in path


def test_fraction_split_uses_every_image(tmp_path):
    root = make_image_folder(tmp_path / "d", {"a": 10, "b": 7})
    s = load_splits(cfg(root=str(root), folder_split=[0.6, 0.2, 0.2]), 1)
    # a: 10 -> 6/2/2; b: 7 -> 4.2/1.4/1.4 -> 4/2/1 (largest remainder, ties to the earlier part)
    assert [s.train.class_counts(), s.val.class_counts(), s.test.class_counts()] == [[6, 4], [2, 2], [2, 1]]


def test_split_is_seeded(tmp_path):
    root = make_image_folder(tmp_path / "d", {"a": 10, "b": 10})
    c = cfg(root=str(root), folder_split=[5, 5, 0])
    first = load_splits(c, 0)
    assert first.test is None
    assert torch.equal(load_splits(c, 0).train.indices, first.train.indices)
    assert not torch.equal(load_splits(c, 1).train.indices, first.train.indices)


def test_class_with_too_few_images_is_named(tmp_path):
    root = make_image_folder(tmp_path / "d", {"many": 10, "few": 3})
    with pytest.raises(DataError, match="'few' has 3 usable images"):
        load_splits(cfg(root=str(root), folder_split=[4, 1, 1]), 0)


def test_unreadable_image_stops_with_its_path(tmp_path):
    root = make_image_folder(tmp_path / "d", {"a": 4, "b": 4}, bad={"b": 1})
    with pytest.raises(DataError) as e:
        load_splits(cfg(root=str(root)), 0)
    assert str(root / "b" / "broken_0.jpg") in str(e.value) and "bad_images: skip" in str(e.value)


def test_skip_mode_warns_with_paths_and_goes_on(tmp_path):
    root = make_image_folder(tmp_path / "d", {"a": 5, "b": 5}, bad={"a": 2})
    with pytest.warns(UserWarning, match="broken_1.jpg"):
        s = load_splits(cfg(root=str(root), bad_images="skip", folder_split=[1.0, 0, 0]), 0)
    assert len(s.train) == 10 and s.val is None and s.test is None
    assert not any("broken" in p for p in s.train.paths)


def test_missing_root_and_empty_class(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_splits(cfg(root=str(tmp_path / "none")), 0)
    with pytest.raises(DataError, match="data.root"):
        load_splits(cfg(), 0)
    make_image_folder(tmp_path / "d", {"a": 3})
    (tmp_path / "d" / "empty").mkdir()
    with pytest.raises(DataError, match="empty: empty"):
        load_splits(cfg(root=str(tmp_path / "d")), 0)


def test_nested_files_and_uppercase_suffix(tmp_path):
    """Tiny-ImageNet keeps train images in <wnid>/images/*.JPEG."""
    from PIL import Image
    for c in ("n01", "n02"):
        d = tmp_path / "tin" / c / "images"
        d.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (64, 64), (i, 0, 0)).save(d / f"{c}_{i}.JPEG", format="JPEG")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = load_splits(cfg(root=str(tmp_path / "tin"), folder_split=[1.0, 0, 0]), 0)
    assert s.classes == ["n01", "n02"] and s.train.class_counts() == [3, 3]
