"""Downloads against a real local HTTP server; MD5 checks; safe extraction; no-network advice."""
import hashlib
import io
import tarfile

import pytest
from data_helpers import http_server, make_archive, make_cifar10

import cnnlab.data.cifar as cifar_mod
from cnnlab.data import DataConfig, DataError, download_url, find_data_dir, load_splits, safe_extract
from cnnlab.data.cifar import CifarSpec


@pytest.fixture(autouse=True)
def isolated_lookup(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.delenv("CNNLAB_DOWNLOAD_MIRROR", raising=False)


@pytest.fixture
def served_archive(tmp_path):
    """A tiny publisher-style cifar-10-python.tar.gz on a local server: (base_url, md5)."""
    make_cifar10(tmp_path / "build", per_batch=10, test=10)
    site = tmp_path / "site"
    site.mkdir()
    archive = make_archive(tmp_path / "build" / "cifar-10-batches-py", site / "cifar-10-python.tar.gz")
    with http_server(site) as url:
        yield url, hashlib.md5(archive.read_bytes()).hexdigest()


def test_download_url_verifies_and_replaces(served_archive, tmp_path):
    url, md5 = served_archive
    dest = tmp_path / "dl" / "a.tar.gz"
    assert download_url(url + "cifar-10-python.tar.gz", dest, md5, progress=False) == dest
    assert hashlib.md5(dest.read_bytes()).hexdigest() == md5
    assert not (tmp_path / "dl" / "a.tar.gz.part").exists()


def test_md5_mismatch_leaves_no_file(served_archive, tmp_path):
    url, md5 = served_archive
    dest = tmp_path / "dl" / "a.tar.gz"
    with pytest.raises(DataError, match=f"expected {'0' * 32}, got {md5}"):
        download_url(url + "cifar-10-python.tar.gz", dest, "0" * 32, progress=False)
    assert list((tmp_path / "dl").iterdir()) == []


def test_download_extract_and_load_through_the_mirror(served_archive, tmp_path, monkeypatch):
    url, md5 = served_archive
    monkeypatch.setenv("CNNLAB_DOWNLOAD_MIRROR", url)
    # the mirror serves our tiny archive, so expect its MD5 instead of the publisher's
    spec = cifar_mod.CIFAR_SPECS["cifar10"]
    monkeypatch.setitem(cifar_mod.CIFAR_SPECS, "cifar10", CifarSpec(**{**spec.__dict__, "md5": md5}))
    splits = load_splits(DataConfig(download=True), 0, None)
    assert len(splits.train) == 50 and len(splits.test) == 10
    cache = tmp_path / "cache" / "cnnlab"
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-batches-py"]  # archive removed, no temp
    assert find_data_dir("cifar10") == cache / "cifar-10-batches-py"  # found now, no second download


def test_mirror_with_wrong_archive_fails_on_the_publisher_md5(served_archive, tmp_path, monkeypatch):
    url, _ = served_archive
    monkeypatch.setenv("CNNLAB_DOWNLOAD_MIRROR", url)
    with pytest.raises(DataError, match="c58f30108f718f92721af3b95e74349a"):
        find_data_dir("cifar10", download=True, progress=False)
    cache = tmp_path / "cache" / "cnnlab"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_no_network_says_where_to_put_the_data(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_DOWNLOAD_MIRROR", "http://127.0.0.1:9/")  # closed port
    with pytest.raises(DataError) as e:
        load_splits(DataConfig(download=True), 0, str(tmp_path / "mine"))
    msg = str(e.value)
    assert "download from http://127.0.0.1:9/cifar-10-python.tar.gz failed" in msg
    assert str(tmp_path / "mine" / "cifar-10-batches-py") in msg
    assert str(tmp_path / "cache" / "cnnlab" / "cifar-10-batches-py") in msg
    assert "CNNLAB_DATA" in msg and "--data-dir" in msg and "unpack.py cifar10 DIR" in msg
    assert not list((tmp_path / "cache" / "cnnlab").glob("*.part"))


def _tar_with(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


@pytest.mark.parametrize("bad, member", [
    (_file("../evil.txt"), "../evil.txt"),
    (_file("ok/../../evil.txt"), "ok/../../evil.txt"),
    (_file("/tmp/evil_abs.txt"), "/tmp/evil_abs.txt"),
    (_link("ok/link", "../../outside"), "ok/link"),
    (_link("ok/abslink", "/etc/passwd"), "ok/abslink"),
    (_link("ok/hard", "../x", tarfile.LNKTYPE), "ok/hard"),
])
def test_escaping_members_are_refused_and_nothing_is_written(tmp_path, bad, member):
    archive = _tar_with(tmp_path / "a.tar.gz", [_file("ok/first.txt"), bad, _file("ok/last.txt")])
    dest = tmp_path / "dest" / "inner"
    with pytest.raises(DataError, match=f"member '{member}'"):
        safe_extract(archive, dest)
    assert list(dest.iterdir()) == []  # nothing extracted at all, not even the good members
    assert not (tmp_path / "dest" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "dest"]


def test_safe_extract_good_archive_with_internal_link(tmp_path):
    archive = _tar_with(tmp_path / "a.tar.gz", [_file("d/a.txt", b"hello"), _link("d/b.txt", "a.txt")])
    safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "d" / "b.txt").read_bytes() == b"hello"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["d"]  # staging folder removed


def test_damaged_archive_is_named(tmp_path):
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"\x1f\x8b\x08 not really gzip")
    with pytest.raises(DataError, match="broken.tar.gz"):
        safe_extract(archive, tmp_path / "out")


def test_archive_placed_in_data_dir_is_extracted_there(tmp_path):
    make_cifar10(tmp_path / "build", per_batch=4, test=10)
    mine = tmp_path / "mine"
    mine.mkdir()
    make_archive(tmp_path / "build" / "cifar-10-batches-py", mine / "cifar-10-python.tar.gz")
    assert find_data_dir("cifar10", str(mine)) == mine / "cifar-10-batches-py"
    assert len(load_splits(DataConfig(download=False), 0, str(mine)).train) == 20


def _cifar_archive_bytes(tmp_path, per_batch=30):
    make_cifar10(tmp_path / "build", per_batch=per_batch, test=30)
    return make_archive(tmp_path / "build" / "cifar-10-batches-py", tmp_path / "full.tar.gz").read_bytes()


@pytest.mark.parametrize("keep", [20, 300, 0.5, -4, -30])  # bytes kept (a float: that share of the file)
def test_truncated_local_archive_is_named_and_nothing_is_left(tmp_path, keep):
    data = _cifar_archive_bytes(tmp_path)
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    mine = tmp_path / "mine"
    mine.mkdir()
    archive = mine / "cifar-10-python.tar.gz"
    archive.write_bytes(data[:cut])
    with pytest.raises(DataError) as e:
        find_data_dir("cifar10", str(mine))
    msg = str(e.value)
    assert f"archive {archive} is truncated or damaged" in msg and "delete it" in msg
    assert "\n" not in msg
    assert sorted(p.name for p in mine.iterdir()) == ["cifar-10-python.tar.gz"]  # nothing half-extracted


def test_corrupt_gzip_data_is_named(tmp_path):
    data = bytearray(_cifar_archive_bytes(tmp_path))
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)  # zeros in the middle of the deflate stream
    archive = tmp_path / "mine" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(bytes(data))
    with pytest.raises(DataError, match=f"archive {archive} is truncated or damaged"):
        find_data_dir("cifar10", str(tmp_path / "mine"))
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["cifar-10-python.tar.gz"]


@pytest.mark.parametrize("members", [
    [_file("notes"), _file("data_batch_1")],  # a foreign archive at the top level
    [_file("cifar-10-batches-py/readme.html")],  # the right folder, without the batches
    [_file(f"cifar-10-batches-py/{n}") for n in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                                                "data_batch_5", "test_batch", "batches.meta")] + [_file("notes")],
])
def test_foreign_archive_with_the_right_name_is_refused_and_not_extracted(tmp_path, members):
    mine = tmp_path / "mine"
    mine.mkdir()
    archive = _tar_with(mine / "cifar-10-python.tar.gz", members)
    for _ in range(2):  # the second run gives the same message (it used to say "notes already exists")
        with pytest.raises(DataError) as e:
            find_data_dir("cifar10", str(mine))
        msg = str(e.value)
        assert f"archive {archive} is not the expected dataset archive" in msg
        assert "cifar-10-batches-py/" in msg and "data_batch_5" in msg and "batches.meta" in msg
        assert "Nothing was extracted" in msg
        assert sorted(p.name for p in mine.iterdir()) == ["cifar-10-python.tar.gz"]


def test_publisher_style_archive_with_folder_entry_and_readme_is_accepted(tmp_path):
    make_cifar10(tmp_path / "build", per_batch=4, test=10)
    (tmp_path / "build" / "cifar-10-batches-py" / "readme.html").write_text("<html></html>")
    mine = tmp_path / "mine"
    mine.mkdir()
    make_archive(tmp_path / "build" / "cifar-10-batches-py", mine / "cifar-10-python.tar.gz")  # has the dir entry
    assert find_data_dir("cifar10", str(mine)) == mine / "cifar-10-batches-py"
