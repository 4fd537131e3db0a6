"""precise_bn: batch-norm statistics recomputed after the last epoch (train/batchnorm_stats.py)."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from cnnlab.train.batchnorm_stats import recompute_batchnorm_stats, training_batchnorms
from cnnlab.train.experiment import load_experiment
from cnnlab.train.loop import train
from engine_helpers import REPO, tiny_overrides


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4, momentum=0.4), nn.ReLU(),
                         nn.Dropout(0.5), nn.Flatten(), nn.Linear(4 * 8 * 8, 2))


def test_statistics_become_the_mean_over_the_batches_and_nothing_else_changes():
    net = _net()
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    normalize = lambda x: x.float() / 255   # noqa: E731
    net.train()
    net[3].eval()   # a module the caller left in eval mode keeps it
    weights = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k and "num_batches" not in k}
    used = recompute_batchnorm_stats(net, ["1"], images, normalize, batches=4, batch_size=16,
                                     generator=torch.Generator().manual_seed(0))
    assert used == 64
    with torch.no_grad():
        feats = net[0](normalize(images))
    # Batches of equal size over every image: the mean of their means is the mean over all images.
    torch.testing.assert_close(net[1].running_mean, feats.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    # The variance is the mean of the four batches' unbiased variances: near the whole set's.
    torch.testing.assert_close(net[1].running_var, feats.var(dim=(0, 2, 3)), rtol=0.1, atol=1e-4)
    assert net[1].momentum == 0.4 and net.training and net[1].training and not net[3].training
    for k, v in weights.items():
        assert torch.equal(net.state_dict()[k], v), k


def test_fewer_batches_use_a_seeded_draw_and_a_batch_of_one_is_left_out():
    images = torch.randint(0, 256, (33, 3, 8, 8), dtype=torch.uint8)
    normalize = lambda x: x.float() / 255   # noqa: E731
    means = []
    for seed in (0, 0, 1):
        net = _net()
        n = recompute_batchnorm_stats(net, ["1"], images, normalize, batches=1, batch_size=8,
                                      generator=torch.Generator().manual_seed(seed))
        assert n == 8
        means.append(net[1].running_mean.clone())
    assert torch.equal(means[0], means[1]) and not torch.equal(means[0], means[2])
    net = _net()
    assert recompute_batchnorm_stats(net, ["1"], images, normalize, batches=5, batch_size=8,
                                     generator=torch.Generator().manual_seed(0)) == 32   # not 33: BN needs >= 2
    with pytest.raises(ValueError, match="no batch-norm layer named '0'"):
        recompute_batchnorm_stats(net, ["0"], images, normalize, 1, 8, torch.Generator())
    with pytest.raises(ValueError, match="0 to keep"):
        recompute_batchnorm_stats(net, ["1"], images, normalize, 0, 8, torch.Generator())


def test_frozen_batch_norm_is_not_recomputed():
    net = _net()
    assert training_batchnorms(net) == ["1"]
    for p in net[1].parameters():
        p.requires_grad_(False)
    assert training_batchnorms(net, "eval") == [] and training_batchnorms(net, "train") == ["1"]


def test_negative_precise_bn_is_a_config_error():
    with pytest.raises(ValueError, match="precise_bn must be >= 0"):
        load_experiment(REPO / "recipes" / "004-a.yaml", ["precise_bn=-1"])


def test_a_run_with_precise_bn_saves_the_same_weights_with_other_statistics(tiny_cifar, tmp_path):
    def run(*extra):
        cfg = load_experiment(REPO / "recipes" / "004-a.yaml", tiny_overrides(epochs=2, batch_size=16) + list(extra))
        lines: list[str] = []
        result = train(cfg, runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lines.append)
        return result, load_file(str(result.run_dir / "model.safetensors")), lines

    plain_result, plain, _ = run("name=plain")
    precise_result, precise, lines = run("name=precise", "precise_bn=3")
    assert any("precise_bn: batch-norm statistics of" in line and "48 training images" in line for line in lines)
    stats = [k for k in plain if k.endswith("running_mean") or k.endswith("running_var")]
    assert stats, "004-a has batch norm"
    for k in plain:
        if k in stats:
            assert not torch.equal(plain[k], precise[k]), k
        elif not k.endswith("num_batches_tracked"):
            assert torch.equal(plain[k], precise[k]), k   # the training itself is the same
    # The epochs' rows (moving averages during training) are the same; the final scores use the new statistics.
    rows = [[json.loads(line) for line in (r.run_dir / "metrics.jsonl").read_text().splitlines()]
            for r in (plain_result, precise_result)]
    assert [r["train_loss"] for r in rows[0]] == [r["train_loss"] for r in rows[1]]
    assert [r["val_acc"] for r in rows[0]] == [r["val_acc"] for r in rows[1]]
    assert precise_result.status == "completed" and precise_result.summary["final"]["test_acc"] is not None
