"""Weight initialisation schemes for conv and linear layers."""
from __future__ import annotations

from torch import nn

INIT_SCHEMES = ("default", "normal", "glorot", "he")
_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)


def init_weights(model: nn.Module, scheme: str, std: float = 0.01) -> nn.Module:
    """Re-initialise every conv/linear layer of ``model`` in place and return it.

    Schemes: ``default`` (PyTorch's own ``reset_parameters``), ``normal``
    (weights ~ N(0, std), zero bias; report 002 used std 0.001), ``glorot``
    (Xavier uniform, zero bias: the Keras default), ``he`` (Kaiming normal,
    fan_out, ReLU gain, zero bias). Batch-norm layers are reset to weight 1, bias 0.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; choose one of {', '.join(INIT_SCHEMES)}")
    if scheme == "normal" and not std > 0:
        raise ValueError(f"init std must be > 0, got {std!r}")
    for module in model.modules():
        if isinstance(module, _WEIGHTED):
            if scheme == "default":
                module.reset_parameters()
                continue
            if scheme == "normal":
                nn.init.normal_(module.weight, mean=0.0, std=std)
            elif scheme == "glorot":
                nn.init.xavier_uniform_(module.weight)
            else:
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            module.reset_parameters()
    return model
