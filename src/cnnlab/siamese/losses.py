"""Losses on pairs (and triplets) of embeddings, report 002-c and beyond.

Y = 1 for a same-class pair, d = ||e1 - e2||_2 (embedding units; at most 2 for L2-normalized
embeddings, so d² is at most 4):

    contrastive_half           Y·½·d² + (1−Y)·max(margin − d², 0)     report 002-c, loss (1)
    contrastive                Y·d²   + (1−Y)·max(margin − d², 0)     report 002-c, loss (2)
    contrastive_hinge_squared  Y·d²   + (1−Y)·max(margin − d, 0)²     the usual form (Hadsell et al. 2006)
    triplet                    max(d(a,p) − d(a,n) + margin, 0), semi-hard negatives mined in the batch

Each is the mean over the batch's pairs (the course code's tf.reduce_mean). Note that the report's
two forms put the margin on d², not on d: with margin 1.0 a different pair stops pushing once
d² >= 1, i.e. d >= 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PAIR_LOSSES = ("contrastive_half", "contrastive", "contrastive_hinge_squared")
LOSSES = PAIR_LOSSES + ("triplet",)

# sqrt(d²) has an infinite slope at 0: distances are taken as sqrt(d² + 1e-12), so two identical
# embeddings give d = 1e-6 and a zero (not NaN) gradient. Not sqrt(max(d², 1e-12)): that clamp
# gives a zero gradient to every pair closer than 1e-6, so a twin whose embeddings all start
# within 1e-6 of each other (report 002's normal(0, 0.001) init) never leaves that point under the
# triplet loss, which has no other gradient (seen here: loss exactly the margin for 352 steps).
_EPS_SQUARED = 1e-12


def squared_distances(e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
    """d² of each row pair (float32, N)."""
    return (e1.float() - e2.float()).pow(2).sum(dim=1)


def contrastive_loss(d2: torch.Tensor, same: torch.Tensor, margin: float, kind: str) -> torch.Tensor:
    """Mean contrastive loss of pairs with squared distances ``d2`` and same-class flags ``same``."""
    y = same.float()
    if kind == "contrastive_half":
        per_pair = y * 0.5 * d2 + (1 - y) * F.relu(margin - d2)
    elif kind == "contrastive":
        per_pair = y * d2 + (1 - y) * F.relu(margin - d2)
    elif kind == "contrastive_hinge_squared":
        d = (d2 + _EPS_SQUARED).sqrt()
        per_pair = y * d2 + (1 - y) * F.relu(margin - d).pow(2)
    else:
        raise ValueError(f"unknown pair loss {kind!r}; choose one of {', '.join(PAIR_LOSSES)}")
    return per_pair.mean()


def pairwise_distances(emb: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between all rows (float32, M x M), without an M x M x D tensor.

    cdist without its matrix-product shortcut: |a|² + |b|² − 2a·b loses every digit of a d² below
    about 1e-7 in float32 (unit-length embeddings), exactly where a collapsed twin starts.
    """
    e = emb.float()
    d = torch.cdist(e, e, compute_mode="donot_use_mm_for_euclid_dist")
    return (d.pow(2) + _EPS_SQUARED).sqrt()


def triplet_semihard_loss(emb: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Triplet loss over every (anchor, positive) pair of the batch with a semi-hard negative.

    For each anchor a and positive p (same class, p != a) the negative is the closest one farther
    than p (d(a,n) > d(a,p)); when every negative is closer than p, the farthest negative (as
    TensorFlow Addons' triplet_semihard_loss). Anchors without a negative in the batch are left out.
    Mean of max(d(a,p) − d(a,n) + margin, 0) over the pairs used; 0 (with a gradient) when none is.
    """
    dist = pairwise_distances(emb)
    m = dist.shape[0]
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(m, dtype=torch.bool, device=dist.device)
    negative = ~same
    n_neg = negative.sum(dim=1)
    # Each row's negative distances in ascending order, the non-negatives (inf) after them.
    neg_sorted, _ = torch.sort(torch.where(negative, dist, torch.full_like(dist, float("inf"))), dim=1)
    # For every (a, p): the position of the first negative of a farther than d(a, p).
    first_farther = torch.searchsorted(neg_sorted.detach().contiguous(), dist.detach().contiguous(), right=True)
    has_farther = first_farther < n_neg[:, None]
    farther = neg_sorted.gather(1, first_farther.clamp(max=m - 1))
    farthest = neg_sorted.gather(1, (n_neg - 1).clamp(min=0)[:, None]).expand(m, m)
    d_an = torch.where(has_farther, farther, farthest)
    use = positive & (n_neg > 0)[:, None]
    if not bool(use.any()):
        return emb.float().sum() * 0.0
    d_an = torch.where(use, d_an, torch.zeros_like(d_an))   # keep inf out of the graph
    return F.relu(dist - d_an + margin)[use].mean()


def pair_decisions(d2: torch.Tensor, kind: str, margin: float) -> torch.Tensor:
    """Same-class predictions (bool) of pairs at the loss's own boundary: d² < margin/2 for the
    report's losses (margin on d²), d < margin/2 for the others (margin on d)."""
    if kind in ("contrastive_half", "contrastive"):
        return d2 < margin / 2
    return d2 < (margin / 2) ** 2


def batch_nearest_neighbour_hits(emb: torch.Tensor, labels: torch.Tensor, anchors: int) -> torch.Tensor:
    """How many of the first ``anchors`` rows have, as their nearest other row of the batch, a row
    of their own class (an int64 scalar): the triplet loss's accuracy.

    The triplet loss has no distance boundary to score pairs with (it ranks d(a,p) below d(a,n)
    by a margin, wherever they lie), so a pair rule such as d < margin/2 calls every pair of
    unit-length embeddings "different" and reads 50% whatever the twin learned. The batch's
    nearest neighbour is the ranking the loss trains, and reads 1/classes at chance.
    """
    dist = pairwise_distances(emb.detach())
    dist.fill_diagonal_(float("inf"))
    nearest = dist[:anchors].argmin(dim=1)
    return (labels[nearest] == labels[:anchors]).sum()


__all__ = ["LOSSES", "PAIR_LOSSES", "batch_nearest_neighbour_hits", "contrastive_loss", "pair_decisions", "pairwise_distances", "squared_distances",
           "triplet_semihard_loss"]
