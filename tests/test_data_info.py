"""dataset_info on tiny data: text with counts and statistics, a real PNG grid."""
import pytest
from data_helpers import make_cifar10, make_image_folder
from PIL import Image

from cnnlab.data import DataConfig, DataError, dataset_info


@pytest.fixture(autouse=True)
def isolated_lookup(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)


def test_info_on_tiny_cifar10(tmp_path):
    make_cifar10(tmp_path / "d", per_batch=20, test=10)
    png = tmp_path / "out" / "samples.png"
    text = dataset_info("cifar10", str(tmp_path / "d"), png, DataConfig(download=False), samples_per_class=3)
    assert "split sizes: train 100, test 10" in text
    assert "3 x 32 x 32 = 3,072 values per image" in text
    assert "class0" in text and "      10        1" in text  # 10 train and 1 test image per class
    assert "pixel range (all splits): min 0, max 255" in text
    assert "train per-channel mean (0..1): R 0.4" in text or "train per-channel mean (0..1): R 0.5" in text
    with Image.open(png) as img:
        assert img.format == "PNG" and img.width > 100 and img.height > 100
    assert sorted(p.name for p in png.parent.iterdir()) == ["samples.png"]  # no temp file left


def test_info_on_image_folder_with_val(tmp_path):
    root = make_image_folder(tmp_path / "pets", {"cat": 5, "dog": 5})
    png = tmp_path / "grid.png"
    text = dataset_info("folder", str(root), png, DataConfig(name="folder", image_size=16, folder_split=[3, 1, 1]))
    assert "split sizes: train 6, val 2, test 2" in text and "3 x 16 x 16 = 768 values" in text
    assert "  cat" in text and png.is_file()


def test_info_accepts_a_folder_path_as_name(tmp_path):
    root = make_image_folder(tmp_path / "pets", {"cat": 5, "dog": 5})
    text = dataset_info(str(root), None, tmp_path / "g.png")
    assert "dataset folder: 2 classes" in text and "split sizes: train 6, val 2, test 2" in text
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        dataset_info("mnist", None, tmp_path / "g.png")


def test_info_keeps_the_callers_matplotlib_backend(tmp_path):
    """The data layer changes no global state: a notebook's backend (here svg) stays as it was."""
    import os
    import subprocess
    import sys
    import textwrap

    make_cifar10(tmp_path / "d", per_batch=2, test=10)
    script = textwrap.dedent(f"""
        import matplotlib
        matplotlib.use("svg")
        from cnnlab.data import DataConfig, dataset_info
        dataset_info("cifar10", {str(tmp_path / "d")!r}, {str(tmp_path / "g.png")!r}, DataConfig(download=False),
                     samples_per_class=2)
        print("backend", matplotlib.get_backend())
    """)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    env.pop("MPLBACKEND", None)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "svg"
    with Image.open(tmp_path / "g.png") as img:
        assert img.format == "PNG"
