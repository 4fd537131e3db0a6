import os
import subprocess
import tempfile
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MPLBACKEND", "Agg")
# Decoded image folders are cached under the user's cache; tests (and the subprocesses they start)
# use a throw-away folder instead.
os.environ.setdefault("CNNLAB_DECODE_CACHE", tempfile.mkdtemp(prefix="cnnlab-test-decoded-"))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors gain nothing from two OpenMP threads, and on a busy 2-core machine spinning
    threads make a 30 ms step take seconds; subprocess tests pass threads=1 themselves."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_cifar(tmp_path_factory) -> Path:
    """A learnable 200/100-image CIFAR-10-format folder (shared, read-only by convention)."""
    from engine_helpers import make_learnable_cifar10

    return make_learnable_cifar10(tmp_path_factory.mktemp("tiny_cifar"))


@pytest.fixture(scope="session")
def real_cifar10_dir(tmp_path_factory) -> Path:
    """A folder holding the real cifar-10-batches-py: ./data if unpacked there, else unpacked once
    from ../shared/datasets (about 30 s); skipped when the bundled datasets are absent."""
    from engine_helpers import REPO, SHARED_DATASETS

    if (REPO / "data" / "cifar-10-batches-py" / ".complete").is_file():
        return REPO / "data"
    if not (SHARED_DATASETS / "cifar10.npz").is_file():
        pytest.skip(f"bundled datasets not found at {SHARED_DATASETS}: the real-CIFAR tests need them")
    dest = tmp_path_factory.mktemp("real_cifar10")
    subprocess.run([sys.executable, str(SHARED_DATASETS / "unpack.py"), "cifar10", str(dest)], check=True,
                   capture_output=True)
    return dest


# CI: no silent skips. Under CI=true a skip whose reason is not on tests/skip_allowlist.txt fails the
# run, and the log ends with the skip table (tests/skip_policy.py).
from skip_policy import pytest_sessionfinish, pytest_unconfigure  # noqa: E402,F401  (pytest hooks)
