"""The siamese twin: one network with shared weights that maps an image to an embedding.

Both images of a pair go through the same module (one forward pass of the 2N-image batch), so
the weights are shared by construction. The embedding is

    body.forward_features(x)                          embed_from: features   (the flatten/pooled features)
    body.forward_head(features, pre_logits=True)      embed_from: pre_logits (convnet002: fc2, 192 values after ReLU)

then a projection `head` (Linear to embedding_dim; none when embedding_dim is null) and, with
normalize, division by its L2 norm. Report 002-c's twin is the course code's Siamese.inference:
the ConvNet up to fc2 (ReLU), L2-normalized, no projection (embed_from: pre_logits,
embedding_dim: null, normalize: true); the report itself does not restate it.

The submodules are named `body` and `head`, so `stages: [{trainable: head}]` trains the projection
only and `body_lr` slows the network under it (train/stages.py); l2_layers name the body's layers
as `body.fc1`. The body's classification layer stays in the module (and in the weights file)
but takes no part in the embedding.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

EMBED_FROM = ("features", "pre_logits")


class SiameseNet(nn.Module):
    def __init__(self, body: nn.Module, embedding_dim: Optional[int], normalize: bool, embed_from: str,
                 in_chans: int, input_size: int):
        super().__init__()
        if embed_from not in EMBED_FROM:
            raise ValueError(f"embed_from={embed_from!r}; choose one of {', '.join(EMBED_FROM)}")
        for method in ("forward_features",) + (("forward_head",) if embed_from == "pre_logits" else ()):
            if not callable(getattr(body, method, None)):
                raise ValueError(f"a siamese twin needs a model with {method}() (every registered cnnlab model "
                                 f"has it); {type(body).__name__} has not")
        self.body = body
        self.embed_from = embed_from
        self.normalize = normalize
        self.feature_dim = self._feature_dim(in_chans, input_size)
        self.head = nn.Linear(self.feature_dim, embedding_dim) if embedding_dim else nn.Identity()
        self.embedding_dim = embedding_dim or self.feature_dim

    def _feature_dim(self, in_chans: int, input_size: int) -> int:
        """Width of the body's output, from one dry forward in eval mode (batch norm statistics
        and the random generators are left untouched)."""
        was_training = self.body.training
        self.body.eval()
        try:
            with torch.no_grad():
                device = next(self.body.parameters()).device
                return int(self.features(torch.zeros(2, in_chans, input_size, input_size, device=device)).shape[1])
        finally:
            self.body.train(was_training)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        f = self.body.forward_features(x)
        if self.embed_from == "pre_logits":
            f = self.body.forward_head(f, pre_logits=True)
        return f.flatten(1)

    # The one model interface (timm's), so layers, probe and feature caches read a twin as any model:
    # features are the body's (before the projection), the "head" is the projection.
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, f: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return f
        e = self.head(f)
        return F.normalize(e, dim=1) if self.normalize else e

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding, N x embedding_dim (unit length with normalize)."""
        return self.forward_head(self.forward_features(x))


__all__ = ["EMBED_FROM", "SiameseNet"]
