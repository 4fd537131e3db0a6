"""k-nearest-neighbour classification for a whole sweep of k from one distance pass.

For each block of query rows: squared euclidean distances to every fit row by one matmul
(||b||² − 2ab; the query's own ||a||² is the same along a row, so it cannot change the order),
the ``k_max + RERANK`` nearest as candidates (torch.topk), their distances recomputed in float64
and sorted, then the votes of the first k neighbours for every k at once (cumulative class
counts). Each k predicts the class with most votes; ties go to the smallest label, as
scikit-learn's KNeighborsClassifier (uniform weights, brute, euclidean) does (argmax over its
sorted ``classes_``). The float64 re-rank is what scikit-learn computes for float32 features,
so the neighbour order, and the predictions, agree with scikit-learn's; distances that are
exactly equal (duplicate images) rank the lower fit index first.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch

RERANK = 10               # extra float32 candidates re-ranked in float64 (float32 order errors are tiny)
BLOCK_ELEMENTS = 1 << 25  # distances held per block: 32 M floats = 128 MiB (float32)
RERANK_ELEMENTS = 1 << 22  # feature values gathered per re-rank step: 4 M (32 MiB as float64)


@dataclass
class KnnSweep:
    """Accuracy (and optionally predictions) of kNN for each k of a sweep."""

    ks: list[int]
    accuracies: list[float] | None          # fraction correct per k; None without query labels
    predictions: np.ndarray | None = None   # labels, n_query x len(ks), when asked for

    @property
    def best_k(self) -> int:
        """The k of the highest accuracy (the smallest such k on ties)."""
        if self.accuracies is None:
            raise ValueError("no accuracies: give the query labels to knn_sweep")
        return self.ks[int(np.argmax(self.accuracies))]

    @property
    def best_accuracy(self) -> float:
        return max(self.accuracies) if self.accuracies else float("nan")


def parse_ks(text: str) -> list[int]:
    """``"1..40"``, ``"12"`` or ``"1,5,10..20"`` -> sorted distinct k values (ValueError on bad input)."""
    ks: set[int] = set()
    for part in str(text).split(","):
        part = part.strip()
        try:
            if ".." in part:
                lo, hi = (int(v) for v in part.split(".."))
                if lo > hi:
                    raise ValueError
                ks.update(range(lo, hi + 1))
            else:
                ks.add(int(part))
        except ValueError:
            raise ValueError(f"--knn {text!r}: use a range like 1..40, a number, or a list like 1,5,10..20") from None
    if not ks or min(ks) < 1:
        raise ValueError(f"--knn {text!r}: k must be at least 1")
    return sorted(ks)


def _as_float_tensor(x, name: str, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    if t.dim() != 2:
        raise ValueError(f"{name} must be N x D, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} holds NaN or infinite values; check the layer's features")
    return t.to(device)


@torch.no_grad()
def knn_sweep(fit_x, fit_y, query_x, query_y=None, ks: Iterable[int] = range(1, 41),
              device: str | torch.device = "cpu", return_predictions: bool = False) -> KnnSweep:
    """kNN with every k in ``ks``: fit on (``fit_x`` N x D, ``fit_y`` N labels), predict ``query_x``.

    Accuracies need ``query_y``; ``return_predictions`` also returns the predicted labels.
    """
    dev = torch.device(device)
    ks = sorted({int(k) for k in ks})
    fit = _as_float_tensor(fit_x, "fit features", dev)
    query = _as_float_tensor(query_x, "query features", dev)
    fit_labels = np.asarray(fit_y)
    if fit_labels.shape != (fit.shape[0],):
        raise ValueError(f"fit labels have shape {fit_labels.shape}, expected ({fit.shape[0]},)")
    if fit.shape[1] != query.shape[1]:
        raise ValueError(f"fit features have D={fit.shape[1]} but query features D={query.shape[1]}: same layer?")
    if not ks or ks[0] < 1 or ks[-1] > fit.shape[0]:
        raise ValueError(f"k must lie in 1..{fit.shape[0]} (the number of fit images), got {ks[:1]}..{ks[-1:]}")
    classes, fit_codes = np.unique(fit_labels, return_inverse=True)  # sorted, as sklearn's classes_
    codes = torch.as_tensor(fit_codes, dtype=torch.int64, device=dev)
    n_fit, dim, k_max = fit.shape[0], fit.shape[1], ks[-1]
    n_cand = min(n_fit, k_max + RERANK)
    fit_sq = (fit * fit).sum(dim=1)
    fit_sq64 = fit.double().pow(2).sum(dim=1)
    k_pos = torch.as_tensor([k - 1 for k in ks], device=dev)
    rows = max(1, BLOCK_ELEMENTS // n_fit)
    pred_codes = torch.empty((query.shape[0], len(ks)), dtype=torch.int64, device=dev)
    for start in range(0, query.shape[0], rows):
        block = query[start:start + rows]
        partial = torch.addmm(fit_sq, block, fit.T, beta=1.0, alpha=-2.0)  # ||b||² − 2ab, rows x n_fit
        cand = torch.topk(partial, n_cand, dim=1, largest=False, sorted=False).indices
        del partial
        nearest = _rerank(block.double(), fit, fit_sq64, cand)[:, :k_max]
        votes = torch.nn.functional.one_hot(codes[nearest], len(classes)).to(torch.int32).cumsum(dim=1)
        pred_codes[start:start + block.shape[0]] = votes[:, k_pos, :].argmax(dim=2)  # first max: smallest label
    pred_codes = pred_codes.cpu().numpy()
    accuracies = None
    if query_y is not None:
        truth = np.asarray(query_y)
        if truth.shape != (query.shape[0],):
            raise ValueError(f"query labels have shape {truth.shape}, expected ({query.shape[0]},)")
        accuracies = (classes[pred_codes] == truth[:, None]).mean(axis=0).tolist() if len(truth) else None
    return KnnSweep(ks, accuracies, classes[pred_codes] if return_predictions else None)


def _rerank(block64: torch.Tensor, fit: torch.Tensor, fit_sq64: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """Candidates of each row sorted by float64 squared distance (||a||² + ||b||² − 2ab, the formula
    scikit-learn evaluates in float64 for float32 features), ties by fit index."""
    cand = cand.sort(dim=1).values  # index order first, so the stable sort below breaks ties by index
    step = max(1, RERANK_ELEMENTS // (cand.shape[1] * fit.shape[1]))
    block_sq = (block64 * block64).sum(dim=1)
    out = torch.empty_like(cand)
    for s in range(0, cand.shape[0], step):
        c = cand[s:s + step]
        a = block64[s:s + step]
        cross = torch.bmm(fit[c].double(), a[:, :, None]).squeeze(2)  # rows x candidates
        dist = block_sq[s:s + step, None] + fit_sq64[c] - 2.0 * cross
        order = torch.sort(dist, dim=1, stable=True).indices
        out[s:s + step] = c.gather(1, order)
    return out


__all__ = ["KnnSweep", "knn_sweep", "parse_ks"]
