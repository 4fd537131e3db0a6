"""Conv -> batch-norm -> activation unit (and the Keras conv -> activation -> BN order)."""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .activation import make_activation

ORDERS = ("conv-bn-act", "conv-act-bn", "conv-act")


def resolve_padding(padding: str | int, kernel_size: int, stride: int) -> int:
    """Turn Keras-style "same"/"valid" (or an int) into a symmetric padding in pixels."""
    if isinstance(padding, int):
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        return padding
    if padding == "valid":
        return 0
    if padding == "same":
        if kernel_size % 2 == 0:
            raise ValueError(f"padding='same' needs an odd kernel size, got {kernel_size}; give an int padding")
        return kernel_size // 2
    raise ValueError(f"padding must be 'same', 'valid' or an int, got {padding!r}")


class ConvBNAct(nn.Sequential):
    """Convolution, optional batch norm, activation, in a chosen order.

    ``order``: "conv-bn-act" (the PyTorch habit; the conv has no bias by default
    since BN's shift replaces it), "conv-act-bn" (Keras ``Conv2D(activation=...)``
    followed by ``BatchNormalization``; the conv keeps its bias, as Keras counts it)
    or "conv-act" (no BN). Submodules are named ``conv``, ``bn``, ``act``.
    """

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: str | int = "same",
        act: str | None = "relu",
        order: str = "conv-bn-act",
        bias: bool | None = None,
        groups: int = 1,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ):
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r}; choose one of {', '.join(ORDERS)}")
        use_bn = order != "conv-act"
        if bias is None:
            bias = order != "conv-bn-act"
        pad = resolve_padding(padding, kernel_size, stride)
        conv = nn.Conv2d(in_chans, out_chans, kernel_size, stride, pad, groups=groups, bias=bias)
        parts: list[tuple[str, nn.Module]] = [("conv", conv)]
        bn = [("bn", nn.BatchNorm2d(out_chans, eps=bn_eps, momentum=bn_momentum))] if use_bn else []
        act_part = [("act", make_activation(act))]
        parts += act_part + bn if order == "conv-act-bn" else bn + act_part
        super().__init__(OrderedDict(parts))
        self.in_chans, self.out_chans = in_chans, out_chans
