"""Local response normalization across channels (AlexNet's, the TF CIFAR-10 tutorial's): the same
layer as nn.LocalResponseNorm (same class name, arguments and formula), several times cheaper.

    b[c] = a[c] / (k + alpha / size * sum of a[j]^2 over the `size` channels j around c) ^ beta

Why: torch computes the channel-window sum with avg_pool3d over a padded copy, whose forward and
backward are slow, single-pass loops on the CPU: measured on this project's 2-core VM, the two LRN
layers of the 002 ConvNet took 57% of its training step at batch 256 (avg_pool3d and its backward,
and the zero-filled gradient buffers of that backward). Here the window sum is one matrix product
with a C x C band of ones (64 x 64 for the 002 ConvNet), which the CPU's BLAS does at full speed and
autograd differentiates by itself. The sum is taken in float32 at least (also under bf16 autocast,
where the sum of squares would otherwise lose its low digits); the result has the input's type.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def channel_band(channels: int, size: int, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """The C x C matrix whose row c has ones at the channels of c's window: size // 2 before c and
    (size - 1) // 2 after it, as torch's LRN pads, clipped at the first and last channel."""
    idx = torch.arange(channels, device=device)
    offset = idx[None, :] - idx[:, None]            # j - c
    return ((offset >= -(size // 2)) & (offset <= (size - 1) // 2)).to(dtype)


def local_response_norm(x: torch.Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> torch.Tensor:
    """F.local_response_norm of a 4-d (N, C, H, W) tensor, the window sum as one band matmul.
    Tensors not on the CPU or a CUDA GPU (meta tensors for shape inference, whose autocast cannot
    be switched off) take torch's own function."""
    if x.dim() != 4:
        raise ValueError(f"local_response_norm expects an (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    if x.device.type not in ("cpu", "cuda"):
        return F.local_response_norm(x, size, alpha, beta, k)
    with torch.autocast(device_type=x.device.type, enabled=False):
        # float32 at least: half and bf16 inputs are summed in float32, float64 stays float64
        x32 = x if x.dtype in (torch.float32, torch.float64) else x.float()
        band = channel_band(x.shape[1], size, dtype=x32.dtype, device=x.device)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            # channels last: (N, H, W, C) is contiguous, sum over C by multiplying from the right
            window = (x32 * x32).permute(0, 2, 3, 1).matmul(band.t()).permute(0, 3, 1, 2)
        else:
            sq = (x32 * x32).flatten(2)                  # (N, C, H*W)
            window = band.matmul(sq).view(x.shape)
        out = x32 / (window * (alpha / size) + k).pow(beta)
    return out.to(x.dtype)


class LocalResponseNorm(nn.LocalResponseNorm):
    """nn.LocalResponseNorm computed by a band matmul (module docstring); a drop-in replacement.
    Inputs that are not 4-d (N, C, H, W) use torch's own function."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or torch.compiler.is_compiling():
            return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)
        return local_response_norm(x, self.size, self.alpha, self.beta, self.k)


__all__ = ["LocalResponseNorm", "channel_band", "local_response_norm"]
