"""Registry-driven checks: every registered model builds, trains one step and gives sane output."""
from __future__ import annotations

import pytest
import torch

from cnnlab.models import ClassifierModel, count_params, create_model, list_models, model_info, summarize

# Keep the whole file cheap on 2 shared CPU cores: global-pooling networks run at
# 8x8 pixels (same layers, same parameters), flatten-head ones at a small side they
# are built for through their ``input_size`` argument.
_CHEAP_INPUT: dict[str, int] = {
    "autokeras003b": 8, "wrn28_10": 8, "wrn16_4": 8, "resnet18": 8, "resnet20": 8, "resnet32": 8,
    "resnet56": 8, "densenet_bc": 8, "mobilenetv2": 8, "cnn001a": 48,
}


# Models that need arguments to exist.
_KWARGS: dict[str, dict] = {
    "sequential": {"layers": [{"conv_bn_act": 8}, {"residual": 16}, {"pool": {"kind": "global_avg"}}, "dense"]},
}


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    info = model_info(name)
    num_classes = 1 if info.num_classes == 1 else 5
    size = _CHEAP_INPUT.get(name, info.input_size)
    extra = {"input_size": size} if "input_size" in info.allowed_kwargs() else {}
    extra.update(_KWARGS.get(name, {}))
    model = create_model(name, num_classes=num_classes, **extra)
    assert isinstance(model, ClassifierModel)
    assert model.num_classes == num_classes
    x = torch.randn(2, 3, size, size)
    model.train()
    out = model(x)
    assert out.shape == (2, num_classes), f"{name}: output {tuple(out.shape)}"
    assert torch.isfinite(out).all()
    out.float().pow(2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{name}: no gradient for {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    feats = model.forward_features(x)
    assert feats.dim() == 2 and feats.shape[0] == 2
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), model.forward_head(model.forward_features(x)), atol=1e-5)
    # every parameter-holding layer appears once in the summary table
    table = summarize(model, size)
    assert sum(r.params for r in table.rows) == count_params(model)["total"]
    assert table.macs > 0
