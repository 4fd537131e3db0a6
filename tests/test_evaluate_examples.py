"""The four example groups of report 004-a on a hand-made case whose answer is known."""
from __future__ import annotations

import numpy as np
import pytest

from cnnlab.evaluate.examples import EXAMPLE_GROUPS, example_groups

NAMES = ["cat", "dog", "frog"]
# row: probabilities, true label  -> predicted class, prob of predicted, right?
CASE = [
    ([0.95, 0.03, 0.02], 0),  # row 0: cat 0.95 right
    ([0.40, 0.35, 0.25], 0),  # row 1: cat 0.40 right (least confident right)
    ([0.10, 0.80, 0.10], 1),  # row 2: dog 0.80 right
    ([0.05, 0.05, 0.90], 0),  # row 3: frog 0.90 wrong (most confident wrong), true cat
    ([0.30, 0.45, 0.25], 2),  # row 4: dog 0.45 wrong, true frog
    ([0.20, 0.10, 0.70], 1),  # row 5: frog 0.70 wrong, true dog
    ([0.98, 0.01, 0.01], 0),  # row 6: cat 0.98 right (most confident right)
]


def _case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    probs = np.array([p for p, _ in CASE], dtype=np.float32)
    labels = np.array([y for _, y in CASE], dtype=np.int64)
    indices = np.arange(len(CASE)) + 1000  # positions in the source split differ from row numbers
    return probs, labels, indices


def test_four_groups_pick_the_known_rows_in_order() -> None:
    probs, labels, indices = _case()
    groups = example_groups(probs, labels, NAMES, indices, per_group=2)
    assert list(groups) == list(EXAMPLE_GROUPS)
    assert [r["row"] for r in groups["right_highest"]] == [6, 0]
    assert [r["row"] for r in groups["right_lowest"]] == [1, 2]
    assert [r["row"] for r in groups["wrong_highest"]] == [3, 5]
    assert [r["row"] for r in groups["wrong_lowest"]] == [4, 5]
    top_wrong = groups["wrong_highest"][0]
    assert top_wrong["pred_cat"] == "frog" and top_wrong["y_cat"] == "cat" and top_wrong["idx"] == 1003
    assert top_wrong["pred_prob"] == pytest.approx(0.90)


def test_groups_never_mix_right_and_wrong_and_shrink_when_few_candidates() -> None:
    probs, labels, _ = _case()
    groups = example_groups(probs, labels, NAMES, per_group=10)
    assert len(groups["right_highest"]) == 4 and len(groups["wrong_lowest"]) == 3
    assert all(r["pred_cat"] == r["y_cat"] for r in groups["right_lowest"])
    assert all(r["pred_cat"] != r["y_cat"] for r in groups["wrong_highest"])
    assert groups["right_highest"][0]["idx"] == 6  # default indices are row numbers


def test_all_right_gives_empty_wrong_groups() -> None:
    probs = np.eye(3, dtype=np.float32)
    groups = example_groups(probs, np.arange(3), NAMES)
    assert groups["wrong_highest"] == [] and groups["wrong_lowest"] == []
    assert len(groups["right_highest"]) == 3


def test_bad_indices_and_per_group_raise() -> None:
    probs, labels, _ = _case()
    with pytest.raises(ValueError, match="one entry per row"):
        example_groups(probs, labels, NAMES, indices=np.arange(3))
    with pytest.raises(ValueError, match="per_group"):
        example_groups(probs, labels, NAMES, per_group=0)
