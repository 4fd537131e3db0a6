import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def tiny_cifar(tmp_path_factory) -> Path:
    """A learnable 200/100-image CIFAR-10-format folder (shared, read-only by convention)."""
    from engine_helpers import make_learnable_cifar10

    return make_learnable_cifar10(tmp_path_factory.mktemp("tiny_cifar"))
