"""The four groups of classified examples of report 004-a: right/wrong x highest/lowest probability."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from cnnlab.evaluate._inputs import PredictionFormatError, as_class_names, as_class_probs, as_labels

# group key -> (is the prediction right?, sort by highest probability first?), in report order
EXAMPLE_GROUPS: dict[str, tuple[bool, bool]] = {
    "right_highest": (True, True),
    "right_lowest": (True, False),
    "wrong_highest": (False, True),
    "wrong_lowest": (False, False),
}

GROUP_TITLES: dict[str, str] = {
    "right_highest": "Right, highest probability",
    "right_lowest": "Right, lowest probability",
    "wrong_highest": "Wrong, highest probability",
    "wrong_lowest": "Wrong, lowest probability",
}

EXAMPLE_COLUMNS = ("pred_prob", "pred_cat", "y_cat", "idx")


def example_groups(
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str] | None = None,
    indices: np.ndarray | None = None,
    per_group: int = 9,
) -> dict[str, list[dict[str, Any]]]:
    """Pick ``per_group`` examples for each of the four groups of ``EXAMPLE_GROUPS``.

    ``pred_prob`` is the probability of the predicted class (argmax). Each row is
    {"pred_prob", "pred_cat", "y_cat", "idx", "pred", "y", "row"}: class names, class indices,
    ``idx`` = index in the source split (``indices``, default 0..N-1) and ``row`` = row in
    ``probs``. Ties in probability keep the lower row first. A group with no candidates is [].
    """
    if per_group < 1:
        raise ValueError(f"per_group must be >= 1, got {per_group}")
    probs = as_class_probs(probs)
    n_rows, n_classes = probs.shape
    labels = as_labels(labels, n_rows, n_classes)
    names = as_class_names(class_names, n_classes)
    if indices is None:
        indices = np.arange(n_rows)
    indices = np.asarray(indices, dtype=np.int64)
    if indices.shape != (n_rows,):
        raise PredictionFormatError(f"indices must have one entry per row of probs ({n_rows}), got shape {indices.shape}")

    predicted = probs.argmax(axis=1)
    predicted_prob = probs[np.arange(n_rows), predicted]
    right = predicted == labels
    groups: dict[str, list[dict[str, Any]]] = {}
    for key, (want_right, highest_first) in EXAMPLE_GROUPS.items():
        rows = np.flatnonzero(right == want_right)
        sort_key = -predicted_prob[rows] if highest_first else predicted_prob[rows]
        chosen = rows[np.argsort(sort_key, kind="stable")[:per_group]]
        groups[key] = [
            {"pred_prob": float(predicted_prob[r]), "pred_cat": names[predicted[r]], "y_cat": names[labels[r]],
             "idx": int(indices[r]), "pred": int(predicted[r]), "y": int(labels[r]), "row": int(r)}
            for r in chosen
        ]
    return groups
