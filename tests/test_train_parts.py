"""Optimizers, the Keras-style L2 penalty, EMA and the loss for binary heads."""
import pytest
import torch
from torch import nn

from cnnlab.config import ConfigError
from cnnlab.train.experiment import load_experiment
from cnnlab.train.ema import ModelEMA
from cnnlab.train.losses import classification_loss, correct_count
from cnnlab.train.optim import build_optimizer
from cnnlab.train.options import OptimizerConfig
from cnnlab.train.regularization import check_l2_selectors, l2_kernels, l2_penalty


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


@pytest.mark.parametrize("cfg", [
    dict(name="sgd", lr=0.05), dict(name="sgd", lr=0.05, momentum=0.9, nesterov=True),
    dict(name="adam", lr=0.01), dict(name="adamw", lr=0.01, weight_decay=0.01), dict(name="rmsprop", lr=0.005),
])
def test_every_optimizer_reduces_a_loss(cfg):
    net = small_net()
    x, y = torch.randn(32, 3, 8, 8), torch.randint(0, 3, (32,))
    opt = build_optimizer(net.parameters(), OptimizerConfig(**cfg))
    first = None
    for _ in range(30):
        loss = classification_loss(net(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first


def test_adamw_decay_is_decoupled():
    # With zero gradient, AdamW still shrinks weights by lr * wd per step; Adam's coupled decay
    # goes through the normalized update instead (a step of ~lr whatever the weight's size).
    w1, w2 = nn.Parameter(torch.full((1,), 10.0)), nn.Parameter(torch.full((1,), 10.0))
    a = build_optimizer([w1], OptimizerConfig(name="adamw", lr=0.1, weight_decay=0.5))
    b = build_optimizer([w2], OptimizerConfig(name="adam", lr=0.1, weight_decay=0.5))
    for opt, w in ((a, w1), (b, w2)):
        w.grad = torch.zeros(1)
        opt.step()
    assert w1.item() == pytest.approx(10 * (1 - 0.1 * 0.5))
    assert w2.item() == pytest.approx(10 - 0.1, abs=1e-4)


def test_nesterov_needs_sgd_with_momentum():
    with pytest.raises(ConfigError, match="nesterov"):
        load_experiment(None, ["optimizer.name=adam", "optimizer.nesterov=true"])


def test_frozen_model_is_an_error():
    net = small_net().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(net.parameters(), OptimizerConfig())


def test_l2_penalty_is_keras_sum_of_squares_on_chosen_kernels():
    net = small_net()
    conv_w, dense_w = net[0].weight, net[4].weight
    conv_only = l2_penalty(l2_kernels(net, ["conv"]), 1e-2)
    assert conv_only.item() == pytest.approx(1e-2 * conv_w.pow(2).sum().item(), rel=1e-6)
    both = l2_penalty(l2_kernels(net, ["all"]), 1e-2)
    assert both.item() == pytest.approx(1e-2 * (conv_w.pow(2).sum() + dense_w.pow(2).sum()).item(), rel=1e-6)
    by_name = l2_kernels(net, ["4"])                      # a module-name selector
    assert len(by_name) == 1 and by_name[0] is dense_w
    assert l2_penalty(l2_kernels(net, ["conv"]), 0.0) is None
    # batch-norm scale and biases are never penalized
    assert all(p.dim() > 1 for p in l2_kernels(net, ["all"]))


def test_l2_selector_typo_is_an_error():
    with pytest.raises(ValueError, match="matches no conv/dense layer"):
        check_l2_selectors(small_net(), ["fc9"])


def test_ema_follows_the_formula():
    net = small_net()
    ema = ModelEMA(net, decay=0.9)
    before = ema.module[0].weight.detach().clone()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net)
    expected = 0.9 * before + 0.1 * net[0].weight.detach()
    assert torch.allclose(ema.module[0].weight, expected)


def test_binary_head_uses_sigmoid_loss_and_threshold():
    logits = torch.tensor([[2.0], [-1.0], [0.5]])
    labels = torch.tensor([1, 0, 0])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], labels.float())
    assert classification_loss(logits, labels).item() == pytest.approx(expected.item())
    assert correct_count(logits, labels).item() == 2
