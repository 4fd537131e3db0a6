"""Shape inference by a dry forward pass."""
from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def infer_output_shape(module: nn.Module, in_chans: int, input_size: int | tuple[int, int]) -> tuple[int, ...]:
    """Output shape (without batch) of ``module`` for one (in_chans, H, W) image.

    Runs in eval mode (batch-norm statistics stay untouched) and restores the mode.
    """
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    was_training = module.training
    module.eval()
    try:
        out = module(torch.zeros(1, in_chans, h, w))
    finally:
        module.train(was_training)
    return tuple(out.shape[1:])


def flat_features(module: nn.Module, in_chans: int, input_size: int | tuple[int, int]) -> int:
    """Number of values per image after ``module`` (the flatten size feeding a dense head)."""
    try:
        shape = infer_output_shape(module, in_chans, input_size)
    except RuntimeError as err:  # e.g. a valid 3x3 conv on a 2x2 map
        raise ValueError(f"input size {input_size} is too small for this network "
                         f"({str(err).splitlines()[0]}); use a larger input_size") from err
    if any(d < 1 for d in shape):
        raise ValueError(f"input size {input_size} is too small for this network: feature map {shape}")
    n = 1
    for d in shape:
        n *= d
    return n
