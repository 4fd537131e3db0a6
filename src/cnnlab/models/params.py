"""Parameter counting the way Keras counts them."""
from __future__ import annotations

from torch import nn

# Batch-norm buffers Keras shows as "non-trainable params" (moving mean / variance).
# num_batches_tracked is a step counter, not a parameter, so Keras has no twin of it.
_KERAS_STAT_BUFFERS = ("running_mean", "running_var")


def count_params(model: nn.Module) -> dict[str, int]:
    """Count parameters as Keras ``model.summary()`` does.

    Returns ``total``, ``trainable`` (params with ``requires_grad``),
    ``non_trainable`` (frozen params + batch-norm moving mean/variance) and
    ``torch_total`` (``sum(p.numel() for p in model.parameters())``).
    """
    trainable = frozen = 0
    for p in model.parameters():
        if p.requires_grad:
            trainable += p.numel()
        else:
            frozen += p.numel()
    stats = sum(
        buf.numel()
        for name, buf in model.named_buffers()
        if buf is not None and name.rsplit(".", 1)[-1] in _KERAS_STAT_BUFFERS
    )
    return {
        "total": trainable + frozen + stats,
        "trainable": trainable,
        "non_trainable": frozen + stats,
        "torch_total": trainable + frozen,
    }
