"""Validation of prediction arrays shared by the evaluation functions."""
from __future__ import annotations

from typing import Sequence

import numpy as np


class PredictionFormatError(ValueError):
    """Predicted probabilities, labels or class names are inconsistent."""


def as_class_probs(probs: np.ndarray) -> np.ndarray:
    """Return probabilities as an N x K float64 array, turning binary N x 1 sigmoid outputs into N x 2.

    Raises PredictionFormatError when the array is not 1-D/2-D, is empty, or holds NaN/inf.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 1:  # a bare vector of sigmoid outputs
        probs = probs[:, None]
    if probs.ndim != 2:
        raise PredictionFormatError(
            f"probs must be N x K (softmax) or N x 1 (sigmoid), got shape {probs.shape}; reshape before calling"
        )
    if probs.shape[0] == 0:
        raise PredictionFormatError("probs is empty (N = 0): there is nothing to evaluate")
    if not np.all(np.isfinite(probs)):
        raise PredictionFormatError("probs contains NaN or inf: the model diverged; evaluate a finite checkpoint")
    if probs.shape[1] == 1:  # sigmoid: column is P(class 1)
        probs = np.concatenate([1.0 - probs, probs], axis=1)
    return probs


def as_labels(labels: np.ndarray, n_rows: int, n_classes: int) -> np.ndarray:
    """Return labels as an int64 vector of length ``n_rows`` with values in [0, n_classes)."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.shape[0] != n_rows:
        raise PredictionFormatError(
            f"labels must be a vector of {n_rows} class indices (one per row of probs), got shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.mod(labels, 1) == 0):
            raise PredictionFormatError("labels must be integer class indices, not one-hot or probabilities")
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= n_classes:
        raise PredictionFormatError(
            f"labels must lie in [0, {n_classes}) for {n_classes} classes; found range "
            f"[{labels.min()}, {labels.max()}] — are probs and labels from the same dataset?"
        )
    return labels


def as_class_names(class_names: Sequence[str] | None, n_classes: int) -> list[str]:
    """Return ``class_names`` as a list of ``n_classes`` strings ("0", "1", ... when None)."""
    if class_names is None:
        return [str(i) for i in range(n_classes)]
    names = [str(name) for name in class_names]
    if len(names) != n_classes:
        raise PredictionFormatError(
            f"got {len(names)} class names for {n_classes} classes in probs; pass one name per class "
            "(for binary sigmoid outputs, two names: negative then positive)"
        )
    return names
