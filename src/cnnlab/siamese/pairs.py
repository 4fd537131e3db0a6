"""Pairs of images with a set fraction of same-class pairs, drawn from labels in memory (002-c).

The x1 images are given (the training loop's batch, so its shuffle and epochs keep their
meaning); the sampler draws each x1 a partner x2 of the same class or of another class:

    random   every row its own x1 (the report's "alternative" next_batch, experiment 3)
    anchor   the rows form `anchors` groups; every row of a group has the group's first x1 as x1,
             paired with same- and different-class x2 (the report's "default" batches: one x1
             image against the whole batch, experiments 1 and 2)

In each group (the whole batch for `random`) the first floor(fraction·rows + u) rows are the
same-class pairs, u uniform in [0, 1): as the report's int(fraction·batch) when that is a whole
number, and exactly `fraction` on average otherwise. A same-class partner is never the x1 image
itself (unless it is the only image of its class); a different-class partner is uniform over
the images of all other classes. Everything is a few tensor operations on the labels' device;
the uniforms come from a CPU generator, so a run draws the same pairs on CPU and GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SAMPLERS = ("random", "anchor")


@dataclass
class Pairs:
    x1: torch.Tensor      # int64 N: image positions of the first images
    x2: torch.Tensor      # int64 N: their partners
    same: torch.Tensor    # bool N: the pair is of one class (Y = 1)


class PairSampler:
    """Same- and different-class partners for images of a labelled set (labels int64 N)."""

    def __init__(self, labels: torch.Tensor):
        if labels.dim() != 1 or labels.numel() == 0:
            raise ValueError(f"pairs need a non-empty 1-D label tensor, got shape {tuple(labels.shape)}")
        labels = labels.long()
        self.labels = labels
        self.order = torch.argsort(labels, stable=True)              # positions grouped by class
        self.counts = torch.bincount(labels)                          # images per class
        self.starts = torch.cumsum(self.counts, 0) - self.counts      # where each class begins in `order`
        self.rank = torch.empty_like(labels)                          # each image's place within its class
        self.rank[self.order] = torch.arange(labels.numel(), device=labels.device) - self.starts[labels[self.order]]
        if int((self.counts > 0).sum()) < 2:
            raise ValueError("pairs need images of at least 2 classes (different-class pairs are impossible "
                             "with one)")

    def same_partner(self, i: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """For each image position in ``i``, another image of its class; ``u`` uniforms in [0, 1)."""
        k = self.labels[i]
        others = (self.counts[k] - 1).clamp(min=0)
        r = torch.minimum((u * others).long(), (others - 1).clamp(min=0))
        r = r + ((r >= self.rank[i]) & (others > 0)).long()       # skip the image itself
        return self.order[self.starts[k] + r]

    def different_partner(self, i: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """For each image position in ``i``, an image of another class, uniform over them."""
        k = self.labels[i]
        others = self.labels.numel() - self.counts[k]
        r = torch.minimum((u * others).long(), others - 1)
        r = r + (r >= self.starts[k]).long() * self.counts[k]      # jump over the class's own block
        return self.order[r]

    def draw(self, idx: torch.Tensor, same_fraction: float, generator: torch.Generator, sampler: str = "random",
             anchors: int = 1) -> Pairs:
        """Pairs for the batch ``idx`` (positions into the labels) drawn with ``generator`` (CPU)."""
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler={sampler!r}; choose one of {', '.join(SAMPLERS)}")
        n = idx.numel()
        device = self.labels.device
        idx = idx.to(device)
        rows = torch.arange(n, device=device)
        if sampler == "anchor":
            groups = max(1, min(anchors, n))
            size = -(-n // groups)                                   # rows per group (the last may be shorter)
            group = rows // size
            first = group * size
            x1 = idx[first]
            groups = -(-n // size)
            group_rows = torch.clamp(n - torch.arange(groups, device=device) * size, max=size)
        else:
            group, first, x1 = torch.zeros_like(rows), torch.zeros_like(rows), idx
            groups, group_rows = 1, torch.full((1,), n, device=device)
        u = torch.rand(2 * n + groups, generator=generator).to(device)
        n_same = (same_fraction * group_rows + u[2 * n:]).floor().long()
        same = (rows - first) < n_same[group]
        x2 = torch.where(same, self.same_partner(x1, u[:n]), self.different_partner(x1, u[n:2 * n]))
        return Pairs(x1, x2, same)


__all__ = ["PairSampler", "Pairs", "SAMPLERS"]
