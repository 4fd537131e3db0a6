"""Patch-whitening first layer (airbench, Jordan 2024): a fixed conv whose filters decorrelate
the pixels of every k x k patch, fitted from training images before training starts.

The filters are the eigenvectors of the patches' covariance scaled by 1/sqrt(eigenvalue), each
kept with its negation (so a ReLU/GELU after it keeps both signs): 2 * C * k * k output channels.
They are a buffer, not a parameter: no optimizer or `trainable: all` stage can move them. The
bias is a parameter and trains.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchWhitening(nn.Module):
    def __init__(self, in_chans: int = 3, kernel_size: int = 2, eps: float = 5e-4):
        super().__init__()
        self.in_chans, self.kernel_size, self.eps = in_chans, kernel_size, eps
        n = in_chans * kernel_size * kernel_size
        self.out_chans = 2 * n
        # Until fitted: identity-like filters (each pixel of the patch, +/-), so an unfitted net still trains.
        eye = torch.eye(n).view(n, in_chans, kernel_size, kernel_size)
        self.register_buffer("weight", torch.cat([eye, -eye]))
        self.bias = nn.Parameter(torch.zeros(self.out_chans))

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> None:
        """Fit the filters to normalized float images N x C x H x W (a few thousand are enough)."""
        if images.dim() != 4 or images.shape[1] != self.in_chans:
            raise ValueError(f"PatchWhitening.fit expects N x {self.in_chans} x H x W images, got {tuple(images.shape)}")
        k = self.kernel_size
        patches = F.unfold(images.double(), k).transpose(1, 2).reshape(-1, self.in_chans * k * k)  # (N*L, C*k*k)
        patches = patches - patches.mean(0)
        cov = patches.T @ patches / max(1, patches.shape[0] - 1)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        filters = (eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + self.eps)[:, None])
        filters = filters.view(-1, self.in_chans, k, k).to(self.weight)
        self.weight.copy_(torch.cat([filters, -filters]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_chans}, {self.out_chans}, kernel_size={self.kernel_size}, fixed filters"
