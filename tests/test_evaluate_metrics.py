"""classification_metrics against scikit-learn on random predictions."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from cnnlab.evaluate._inputs import PredictionFormatError
from cnnlab.evaluate.metrics import classification_metrics, format_confused_pair, most_confused_pairs


def _random_predictions(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * 2.0
    labels = rng.integers(0, k, size=n)
    logits[np.arange(n), labels] += 1.0  # better than chance, so metrics are not all ~1/K
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32), labels.astype(np.int64)


@pytest.mark.parametrize("n,k,seed", [(500, 10, 0), (800, 100, 1), (300, 3, 2)])
def test_matches_scikit_learn(n: int, k: int, seed: int) -> None:
    probs, labels = _random_predictions(n, k, seed)
    names = [f"c{i}" for i in range(k)]
    result = classification_metrics(probs, labels, names)
    predicted = probs.argmax(axis=1)
    all_classes = list(range(k))

    assert result["n"] == n and result["n_classes"] == k
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))
    probs64 = probs.astype(np.float64)
    probs64 /= probs64.sum(axis=1, keepdims=True)  # float32 rounding would trip sklearn's sum-to-one check
    assert result["log_loss"] == pytest.approx(skm.log_loss(labels, probs64, labels=all_classes), rel=1e-5)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        labels, predicted, labels=all_classes, zero_division=0)
    np.testing.assert_allclose([c["precision"] for c in result["per_class"]], precision)
    np.testing.assert_allclose([c["recall"] for c in result["per_class"]], recall)
    np.testing.assert_allclose([c["f1"] for c in result["per_class"]], f1)
    assert [c["support"] for c in result["per_class"]] == support.tolist()
    for average in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(labels, predicted, labels=all_classes,
                                                         average=average, zero_division=0)
        assert result[f"{average}_avg"]["precision"] == pytest.approx(p)
        assert result[f"{average}_avg"]["recall"] == pytest.approx(r)
        assert result[f"{average}_avg"]["f1"] == pytest.approx(f)
    np.testing.assert_array_equal(result["confusion_matrix"], skm.confusion_matrix(labels, predicted, labels=all_classes))
    if k > 10:
        assert result["top5_accuracy"] == pytest.approx(skm.top_k_accuracy_score(labels, probs, k=5, labels=all_classes))
        assert result["top5_accuracy"] > result["accuracy"]
    else:
        assert result["top5_accuracy"] is None
    json.dumps(result)  # JSON-ready: no numpy scalars left


def test_binary_sigmoid_column_is_expanded_to_two_classes() -> None:
    rng = np.random.default_rng(3)
    p_positive = rng.uniform(size=200).astype(np.float32)
    labels = rng.integers(0, 2, size=200)
    result = classification_metrics(p_positive[:, None], labels, ["cat", "dog"])
    assert result["n_classes"] == 2
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(labels, p_positive > 0.5))
    assert result["log_loss"] == pytest.approx(skm.log_loss(labels, p_positive.astype(np.float64)), rel=1e-5)


def test_a_class_never_predicted_gets_zero_precision_not_nan() -> None:
    probs = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.1, 0.9, 0.0]])
    result = classification_metrics(probs, np.array([0, 2, 1]), ["a", "b", "c"])
    assert result["per_class"][2] == {"class": "c", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert result["accuracy"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("probs,labels,names,match", [
    (np.ones((4, 3)) / 3, np.array([0, 1, 2]), None, "vector of 4"),
    (np.ones((3, 3)) / 3, np.array([0, 1, 3]), None, r"\[0, 3\)"),
    (np.ones((3, 3)) / 3, np.array([0, 1, 2]), ["a", "b"], "2 class names for 3"),
    (np.full((3, 3), np.nan), np.array([0, 1, 2]), None, "NaN"),
    (np.zeros((0, 3)), np.zeros(0, dtype=int), None, "empty"),
])
def test_bad_input_raises_an_actionable_error(probs, labels, names, match) -> None:
    with pytest.raises(PredictionFormatError, match=match):
        classification_metrics(probs, labels, names)


def test_most_confused_pairs_orders_by_count_and_skips_the_diagonal() -> None:
    confusion = np.array([[50, 3, 98], [1, 60, 0], [7, 98, 40]])
    pairs = most_confused_pairs(confusion, ["automobile", "cat", "truck"], top=3)
    assert [format_confused_pair(p) for p in pairs] == ["automobile -> truck: 98", "truck -> cat: 98", "truck -> automobile: 7"]
    assert pairs[0]["share_of_true"] == pytest.approx(98 / 151)
    assert len(most_confused_pairs(np.eye(3, dtype=int) * 5, ["a", "b", "c"])) == 0
