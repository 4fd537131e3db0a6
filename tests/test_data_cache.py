"""The decode cache: hits, invalidation by the folder's listing and the settings, partial
re-decoding, corrupt and unwritable cache files, atomic writes."""
import os
import sys
import warnings

import numpy as np
import pytest
import torch
from data_helpers import make_image_folder
from PIL import Image

from cnnlab.atomic import stale_temp_files
from cnnlab.data import DataConfig, DataError, load_splits
from cnnlab.data import decode_cache
from cnnlab.data.decode_cache import cache_file_for, cache_root, decode_folder


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "decode-cache"
    monkeypatch.setenv(decode_cache.CACHE_ENV, str(folder))
    return folder


@pytest.fixture
def decodes(monkeypatch):
    """Counts the files actually decoded (not read from the cache)."""
    calls = []
    real = decode_cache.decode_image

    def counting(path, size):
        calls.append(os.path.basename(path))
        return real(path, size)
    monkeypatch.setattr(decode_cache, "decode_image", counting)
    return calls


def rels(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))


def test_second_load_is_a_cache_hit_with_the_same_arrays(tmp_path, cache, decodes):
    root = make_image_folder(tmp_path / "d", {"a": 5, "b": 4})
    cfg = DataConfig(name="folder", root=str(root), image_size=8, folder_split=[0.5, 0.25, 0.25])
    first = load_splits(cfg, 0)
    assert len(decodes) == 9
    files = list(cache.glob("*.npz"))
    assert len(files) == 1 and files[0].name.startswith("d-8px-")
    second = load_splits(cfg, 0)
    assert len(decodes) == 9                                  # nothing decoded again
    for a, b in zip(first.items(), second.items()):
        assert torch.equal(a[1].images, b[1].images) and a[1].paths == b[1].paths
    assert stale_temp_files(cache) == []


def test_added_removed_and_modified_files_invalidate_it(tmp_path, cache, decodes):
    root = make_image_folder(tmp_path / "d", {"a": 3, "b": 3})
    images, ok, info = decode_folder(root, rels(root), 8)
    assert (info.decoded, info.reused) == (6, 0) and ok.all()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(root / "a" / "img_new.png")          # added
    (root / "b" / "img_000.png").unlink()                                        # removed
    changed = root / "b" / "img_001.png"
    Image.new("RGB", (8, 8), (99, 98, 97)).save(changed)                          # modified
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))    # a later mtime, even on coarse clocks
    decodes.clear()
    names = rels(root)
    images2, ok2, info2 = decode_folder(root, names, 8)
    assert sorted(decodes) == ["img_001.png", "img_new.png"]      # only the new and the changed file
    assert (info2.decoded, info2.reused) == (2, 4)
    assert images2[names.index("b/img_001.png")][0, 0].tolist() == [99, 98, 97]
    assert images2[names.index("a/img_new.png")][0, 0].tolist() == [1, 2, 3]
    assert np.array_equal(images2[names.index("a/img_000.png")], images[0])
    assert len(list(cache.glob("*.npz"))) == 1                    # replaced, not one more file


def test_same_content_new_mtime_is_decoded_again(tmp_path, cache, decodes):
    root = make_image_folder(tmp_path / "d", {"a": 2, "b": 2})
    decode_folder(root, rels(root), 8)
    p = root / "a" / "img_000.png"
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 5 * 10**9))
    decodes.clear()
    decode_folder(root, rels(root), 8)
    assert decodes == ["img_000.png"]


def test_decode_settings_key_the_cache(tmp_path, cache, decodes):
    root = make_image_folder(tmp_path / "d", {"a": 2, "b": 2})
    decode_folder(root, rels(root), 8)
    decodes.clear()
    images, _, info = decode_folder(root, rels(root), 6)          # another size: its own cache file
    assert len(decodes) == 4 and images.shape == (4, 6, 6, 3)
    assert len(list(cache.glob("*.npz"))) == 2
    assert cache_file_for(root, 6) != cache_file_for(root, 8)
    decodes.clear()
    decode_folder(root, rels(root), 8)
    assert decodes == []
    # the format version is part of the key: a new cnnlab ignores an old file
    old_file = cache_file_for(root, 8)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(decode_cache, "CACHE_FORMAT_VERSION", decode_cache.CACHE_FORMAT_VERSION + 1)
        assert cache_file_for(root, 8) != old_file
        decode_folder(root, rels(root), 8)
    assert len(decodes) == 4


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_shape", "empty"])
def test_a_corrupt_cache_file_is_rebuilt_with_a_warning(tmp_path, cache, decodes, damage):
    root = make_image_folder(tmp_path / "d", {"a": 2, "b": 2})
    good, _, _ = decode_folder(root, rels(root), 8)
    path = cache_file_for(root, 8)
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"PK\x03\x04 not really a zip" * 10)
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:   # a valid .npz whose images do not fit the listing
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["images"] = arrays["images"][:, :4]
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    decodes.clear()
    with pytest.warns(UserWarning, match=r"ignoring the unreadable decode cache .*rewriting it"):
        images, ok, info = decode_folder(root, rels(root), 8)
    assert len(decodes) == 4 and np.array_equal(images, good) and ok.all()
    decodes.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decode_folder(root, rels(root), 8)                        # rebuilt: a clean hit now
    assert decodes == []


def test_an_unwritable_cache_warns_and_loads(tmp_path, monkeypatch, decodes):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(decode_cache.CACHE_ENV, str(blocker / "cache"))   # mkdir fails even as root
    root = make_image_folder(tmp_path / "d", {"a": 2, "b": 2})
    with pytest.warns(UserWarning, match=r"could not write the decode cache"):
        images, ok, _ = decode_folder(root, rels(root), 8)
    assert ok.all() and images.shape == (4, 8, 8, 3)


def test_a_failed_write_keeps_the_previous_cache(tmp_path, cache, monkeypatch, decodes):
    root = make_image_folder(tmp_path / "d", {"a": 2, "b": 2})
    decode_folder(root, rels(root), 8)
    path = cache_file_for(root, 8)
    before = path.read_bytes()
    Image.new("RGB", (8, 8)).save(root / "a" / "img_new.png")

    def dies_midway(f, **arrays):
        f.write(b"PK\x03\x04half")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(decode_cache.np, "savez", dies_midway)
    with pytest.warns(UserWarning, match="could not write the decode cache"):
        decode_folder(root, rels(root), 8)
    assert path.read_bytes() == before and stale_temp_files(cache) == []


def test_off_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(decode_cache.CACHE_ENV, "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() is None
    root = make_image_folder(tmp_path / "d", {"a": 2, "b": 2})
    _, _, info = decode_folder(root, rels(root), 8)
    assert info.cache_file is None and not (tmp_path / "xdg").exists()


def test_default_location_is_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(decode_cache.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "cnnlab" / "decoded"


def test_bad_images_are_reported_from_the_cache_too(tmp_path, cache, decodes):
    root = make_image_folder(tmp_path / "d", {"a": 3, "b": 3}, bad={"a": 1})
    cfg = DataConfig(name="folder", root=str(root), image_size=8, folder_split=[1.0, 0, 0], bad_images="skip")
    with pytest.warns(UserWarning, match="broken_0.jpg"):
        assert len(load_splits(cfg, 0).train) == 6
    decodes.clear()
    with pytest.raises(DataError, match="broken_0.jpg"):     # a cache hit still stops on it
        load_splits(DataConfig(name="folder", root=str(root), image_size=8), 0)
    assert decodes == []


def test_parallel_decode_matches_serial(tmp_path):
    root = make_image_folder(tmp_path / "d", {"a": 70, "b": 70}, bad={"b": 2})   # > one 64-file chunk
    paths = [root / r for r in sorted(p.relative_to(root).as_posix() for p in root.rglob("*.*"))]
    one, ok1 = decode_cache.decode_many(paths, 8, workers=1)
    many, ok4 = decode_cache.decode_many(paths, 8, workers=4)
    assert np.array_equal(one, many) and np.array_equal(ok1, ok4) and int((~ok1).sum()) == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker processes (fork) on Linux only")
def test_a_dead_worker_falls_back_to_this_process(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "d", {"a": 70, "b": 70})
    paths = [str(root / r) for r in rels(root)]
    parent, real = os.getpid(), decode_cache.decode_image

    def dies_in_a_worker(path, size):
        if os.getpid() != parent:
            os._exit(3)     # as a worker killed by the OOM killer would
        return real(path, size)
    monkeypatch.setattr(decode_cache, "decode_image", dies_in_a_worker)
    with pytest.warns(UserWarning, match="a decoding worker died"):
        images, ok = decode_cache.decode_many(paths, 8, workers=2)
    assert ok.all() and images[0, 0, 0].tolist() == [0, 0, 200]
