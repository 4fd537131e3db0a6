"""Classification metrics from predicted probabilities: accuracy, log-loss, top-5, per class, confusion."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from cnnlab.evaluate._inputs import as_class_names, as_class_probs, as_labels

TOP_K = 5  # top-5 accuracy is reported when there are more than 10 classes (CIFAR-100 convention)
TOP_K_MIN_CLASSES = 11


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """K x K counts: row = true class, column = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-probability of the true class (natural log, nats).

    Probabilities are clipped to [eps, 1 - eps] (float64 eps) so a confident mistake costs
    about 36 nats instead of infinity, as in scikit-learn.
    """
    eps = np.finfo(np.float64).eps
    true_class_probs = np.clip(probs[np.arange(len(labels)), labels], eps, 1.0 - eps)
    return float(-np.mean(np.log(true_class_probs)))


def top_k_accuracy(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose true class is among the ``k`` highest probabilities."""
    k = min(k, probs.shape[1])
    top = np.argpartition(-probs, kth=k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator with 0 where the denominator is 0 (sklearn's zero_division=0)."""
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def classification_metrics(probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str] | None) -> dict[str, Any]:
    """Compute the metrics of one split from softmax (N x K) or sigmoid (N x 1) probabilities.

    Returns a JSON-ready dict:
      n, n_classes, class_names, accuracy, log_loss (nats), top5_accuracy (only when K > 10,
      else None), per_class (list of {class, precision, recall, f1, support}), macro_avg and
      weighted_avg ({precision, recall, f1}), confusion_matrix (K x K list, row = true class).
    Precision/recall/F1 of a class with no predictions/support is 0, as scikit-learn with
    zero_division=0.
    """
    probs = as_class_probs(probs)
    n_rows, n_classes = probs.shape
    labels = as_labels(labels, n_rows, n_classes)
    names = as_class_names(class_names, n_classes)
    predicted = np.argmax(probs, axis=1)

    matrix = confusion_matrix(labels, predicted, n_classes)
    true_positives = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)
    predicted_count = matrix.sum(axis=0).astype(np.float64)
    precision = _safe_divide(true_positives, predicted_count)
    recall = _safe_divide(true_positives, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    weights = support / support.sum()

    per_class = [
        {"class": names[i], "precision": float(precision[i]), "recall": float(recall[i]),
         "f1": float(f1[i]), "support": int(support[i])}
        for i in range(n_classes)
    ]
    return {
        "n": int(n_rows),
        "n_classes": int(n_classes),
        "class_names": names,
        "accuracy": float(np.mean(predicted == labels)),
        "log_loss": log_loss(probs, labels),
        "top5_accuracy": top_k_accuracy(probs, labels, TOP_K) if n_classes >= TOP_K_MIN_CLASSES else None,
        "per_class": per_class,
        "macro_avg": {"precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean())},
        "weighted_avg": {"precision": float(weights @ precision), "recall": float(weights @ recall),
                         "f1": float(weights @ f1)},
        "confusion_matrix": matrix.tolist(),
    }


def most_confused_pairs(confusion: np.ndarray | list, class_names: Sequence[str], top: int = 10) -> list[dict[str, Any]]:
    """The off-diagonal cells of a confusion matrix with the largest counts, largest first.

    Each item is {"true": name, "predicted": name, "count": int, "share_of_true": count / row total}.
    Cells with count 0 are never listed; ties are broken by (true index, predicted index).
    """
    matrix = np.asarray(confusion, dtype=np.int64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"confusion must be a square K x K matrix, got shape {matrix.shape}")
    names = as_class_names(class_names, matrix.shape[0])
    off_diagonal = matrix.copy()
    np.fill_diagonal(off_diagonal, 0)
    rows, cols = np.nonzero(off_diagonal)
    counts = off_diagonal[rows, cols]
    order = np.lexsort((cols, rows, -counts))[:top]  # last key is primary: count descending
    row_totals = matrix.sum(axis=1)
    return [
        {"true": names[rows[i]], "predicted": names[cols[i]], "count": int(counts[i]),
         "share_of_true": float(counts[i] / row_totals[rows[i]])}
        for i in order
    ]


def format_confused_pair(pair: dict[str, Any]) -> str:
    """"automobile -> truck: 98" for one item of ``most_confused_pairs``."""
    return f"{pair['true']} -> {pair['predicted']}: {pair['count']}"
