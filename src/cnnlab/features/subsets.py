"""Which feature rows a probe fits on and scores on: stratified, seeded subsets and hold-outs.

Built on ``cnnlab.data.stratify`` (the same per-class proportional, seeded draw as the trainer's
train_subset), with positions into a split's feature rows.
"""
from __future__ import annotations

import numpy as np
import torch

from cnnlab.data.errors import DataError
from cnnlab.data.stratify import stratified_split


def stratified_positions(labels: np.ndarray, take: int, seed: int, purpose: str, option: str) -> np.ndarray:
    """Sorted positions of ``take`` rows of ``labels``, per class in proportion, seeded by (seed, purpose).

    ``option`` names the command-line option in errors (ValueError).
    """
    labels = np.asarray(labels)
    if take < 1 or take > len(labels):
        raise ValueError(f"{option} {take}: choose between 1 and {len(labels)} (the images available)")
    codes = torch.as_tensor(np.unique(labels, return_inverse=True)[1].reshape(-1), dtype=torch.int64)
    try:
        chosen, _ = stratified_split(codes, take, int(codes.max()) + 1, seed, purpose, option)
    except DataError as err:
        raise ValueError(str(err)) from None
    return chosen.numpy()


def holdout_positions(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, score) positions: ``fraction`` of the rows held out for scoring, stratified and seeded."""
    if not 0 < fraction < 1:
        raise ValueError(f"--holdout {fraction}: give the scored fraction, between 0 and 1 (e.g. 0.2)")
    n = len(labels)
    take = int(round(fraction * n))
    if not 0 < take < n:
        raise ValueError(f"--holdout {fraction} of {n} images leaves no image on one side; use more images")
    score = stratified_positions(labels, take, seed, "probe-holdout", "--holdout")
    fit = np.setdiff1d(np.arange(n), score)
    return fit, score


__all__ = ["holdout_positions", "stratified_positions"]
