"""The real bundled CIFAR-10: sizes, class balance, published statistics."""
import pytest
import torch

from cnnlab.data import DataConfig, Normalizer, load_splits


def test_real_cifar10(real_cifar10_dir, monkeypatch):
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    s = load_splits(DataConfig(download=False), 0, str(real_cifar10_dir))
    assert len(s.train) == 50_000 and len(s.test) == 10_000
    assert s.train.class_counts() == [5000] * 10 and s.test.class_counts() == [1000] * 10
    assert s.classes[0] == "airplane" and s.classes[9] == "truck"
    norm = Normalizer.fit("per_channel", s.train.images)
    assert torch.allclose(norm.mean / 255, torch.tensor([0.4914, 0.4822, 0.4465]), atol=1e-4)
    assert torch.allclose(norm.std / 255, torch.tensor([0.2470, 0.2435, 0.2616]), atol=1e-4)
    carved = load_splits(DataConfig(val_size=10_000, download=False), 0, str(real_cifar10_dir))  # 001-d: 40k/10k/10k
    assert len(carved.train) == 40_000 and carved.val.class_counts() == [1000] * 10
