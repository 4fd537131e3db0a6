"""Tiny-ImageNet-200 in its publisher's layout, on a generated miniature of it."""
from pathlib import Path

import pytest
import torch
from PIL import Image

from cnnlab.data import DataConfig, DataError, load_splits

# Real wnids and their words.txt lines (first synonym first), plus one wnid words.txt lacks.
WORDS = {
    "n01443537": "goldfish, Carassius auratus",
    "n01629819": "European fire salamander, Salamandra salamandra",
    "n02123045": "tabby, tabby cat",
}
OTHER_WORDS = {"n00001740": "entity", "n02124075": "Egyptian cat"}


@pytest.fixture(autouse=True)
def private_decode_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_DECODE_CACHE", str(tmp_path / "decode-cache"))


def colour(c: int) -> tuple[int, int, int]:
    """A class colour far from the others (JPEG keeps flat colours within a few levels)."""
    return ((c * 97 + 40) % 256, (c * 57 + 200) % 256, (c * 151 + 90) % 256)


def make_tiny_imagenet(base: Path, wnids=tuple(WORDS), train_per_class: int = 4, val_per_class: int = 2,
                       size: int = 16, test_images: int = 3) -> Path:
    """base/tiny-imagenet-200 in the publisher's layout, JPEGs of flat class colours (learnable).
    Class c is the c-th wnid in sorted order; wnids.txt lists them unsorted, as the real file does."""
    root = Path(base) / "tiny-imagenet-200"
    order = sorted(wnids)
    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(reversed(order)) + "\n")
    words = {**OTHER_WORDS, **{w: WORDS.get(w, f"thing {w}") for w in wnids}}
    (root / "words.txt").write_text("".join(f"{w}\t{t}\n" for w, t in sorted(words.items())))
    for c, w in enumerate(order):
        d = root / "train" / w / "images"
        d.mkdir(parents=True)
        for i in range(train_per_class):
            Image.new("RGB", (size, size), colour(c)).save(d / f"{w}_{i}.JPEG", quality=95)
        (root / "train" / w / f"{w}_boxes.txt").write_text("".join(f"{w}_{i}.JPEG\t0\t0\t8\t8\n"
                                                                   for i in range(train_per_class)))
    (root / "val" / "images").mkdir(parents=True)
    lines = []
    for k in range(val_per_class * len(order)):
        c = k % len(order)
        Image.new("RGB", (size, size), colour(c)).save(root / "val" / "images" / f"val_{k}.JPEG", quality=95)
        lines.append(f"val_{k}.JPEG\t{order[c]}\t1\t2\t10\t12\n")
    (root / "val" / "val_annotations.txt").write_text("".join(lines))
    (root / "test" / "images").mkdir(parents=True)
    for k in range(test_images):
        Image.new("RGB", (size, size), (0, 0, 0)).save(root / "test" / "images" / f"test_{k}.JPEG")
    return root


def cfg(root, **kw):
    return DataConfig(name="tiny_imagenet", root=str(root), **{"image_size": 8, **kw})


def test_layout_classes_splits_and_labels(tmp_path):
    root = make_tiny_imagenet(tmp_path)
    s = load_splits(cfg(root), 0)
    assert s.name == "tiny_imagenet"
    # sorted wnids, named by words.txt's first synonym
    assert s.classes == ["goldfish", "European fire salamander", "tabby"]
    assert s.train.class_counts() == [4, 4, 4] and s.val is None
    assert s.test.class_counts() == [2, 2, 2]    # the labelled val images; test/ (3 unlabelled) is not used
    assert s.train.images.shape == (12, 3, 8, 8) and s.test.images.dtype == torch.uint8
    for ds in (s.train, s.test):   # each image's pixels carry its class colour: labels follow the annotations
        for img, y in zip(ds.images, ds.labels.tolist()):
            assert all(abs(int(img[ch, 4, 4]) - colour(y)[ch]) <= 6 for ch in range(3))
    assert all("/images/" in p and "/train/" in p for p in s.train.paths)
    assert all("/val/images/val_" in p for p in s.test.paths)


def test_validation_from_train_and_subsets(tmp_path):
    root = make_tiny_imagenet(tmp_path, train_per_class=5)
    s = load_splits(cfg(root, val_size=3, test_subset=3), 0)
    assert s.val.class_counts() == [1, 1, 1] and s.train.class_counts() == [4, 4, 4]
    assert s.test.class_counts() == [1, 1, 1]
    assert not set(s.val.paths) & set(s.train.paths)


def test_found_as_the_folder_its_parent_or_in_cnnlab_data(tmp_path, monkeypatch):
    root = make_tiny_imagenet(tmp_path / "datasets")
    assert load_splits(cfg(root.parent), 0).classes[0] == "goldfish"
    monkeypatch.setenv("CNNLAB_DATA", str(root.parent))
    assert len(load_splits(cfg(None), 0).test) == 6


def test_not_found_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"Tiny-ImageNet-200 not found.*tiny-imagenet-200\.zip"):
        load_splits(cfg(tmp_path / "nowhere"), 0)


def test_duplicate_first_synonyms_stay_unique(tmp_path):
    root = make_tiny_imagenet(tmp_path, wnids=("n02123045", "n02124075", "n09999999"))
    # two first synonyms are 'tabby'; n09999999 has no line in words.txt
    (root / "words.txt").write_text("n02123045\ttabby, tabby cat\nn02124075\ttabby, Egyptian cat\n")
    s = load_splits(cfg(root), 0)
    assert s.classes == ["tabby (n02123045)", "tabby (n02124075)", "n09999999"]


def test_missing_words_txt_names_classes_by_wnid(tmp_path):
    root = make_tiny_imagenet(tmp_path)
    (root / "words.txt").unlink()
    with pytest.warns(UserWarning, match="words.txt is missing"):
        s = load_splits(cfg(root), 0)
    assert s.classes == sorted(WORDS)


def test_broken_annotations_and_missing_files_are_named(tmp_path):
    root = make_tiny_imagenet(tmp_path)
    ann = root / "val" / "val_annotations.txt"
    good = ann.read_text()
    ann.write_text(good + "val_99.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match=r"val_annotations.txt line 7: .*wnid of wnids.txt"):
        load_splits(cfg(root), 0)
    ann.write_text(good + f"val_99.JPEG\t{sorted(WORDS)[0]}\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match=r"1 image\(s\) of val_annotations.txt are missing .*val_99.JPEG"):
        load_splits(cfg(root), 0)
    ann.write_text("".join(good.splitlines(keepends=True)[1:]))
    with pytest.raises(DataError, match=r"val_0.JPEG \(and 0 more\) has no line in"):
        load_splits(cfg(root), 0)
    ann.write_text(good)
    (root / "train" / "n99999999").mkdir()
    with pytest.raises(DataError, match=r"n99999999 that wnids.txt does not list"):
        load_splits(cfg(root), 0)


def test_unreadable_train_image_follows_bad_images(tmp_path):
    root = make_tiny_imagenet(tmp_path)
    broken = root / "train" / "n01443537" / "images" / "n01443537_9.JPEG"
    broken.write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DataError, match="bad_images: skip"):
        load_splits(cfg(root), 0)
    with pytest.warns(UserWarning, match="n01443537_9.JPEG"):
        s = load_splits(cfg(root, bad_images="skip"), 0)
    assert s.train.class_counts() == [4, 4, 4]
