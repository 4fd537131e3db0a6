"""Time to accuracy from metrics rows (the run report's milestone table)."""
import pytest

from cnnlab.evaluate.milestones import time_to_accuracy


def rows(*pairs):
    return [{"epoch": i + 1, "seconds": s, "val_acc": a} for i, (s, a) in enumerate(pairs)]


def test_each_milestone_takes_the_first_epoch_at_or_above_it_and_the_time_summed_so_far():
    marks = time_to_accuracy(rows((10.0, 0.45), (12.0, 0.6), (11.0, 0.58), (9.5, 0.72)), milestones=(0.5, 0.6, 0.7, 0.8))
    assert [(m.accuracy, m.epoch) for m in marks] == [(0.5, 2), (0.6, 2), (0.7, 4), (0.8, None)]
    assert marks[0].seconds == pytest.approx(22.0) and marks[2].seconds == pytest.approx(42.5)
    assert marks[3].seconds is None   # the first milestone not reached closes the list


def test_no_validation_split_reaches_nothing_and_a_missing_time_is_unknown_not_zero():
    assert [m.epoch for m in time_to_accuracy([{"epoch": 1, "seconds": 3.0}], milestones=(0.5,))] == [None]
    marks = time_to_accuracy([{"epoch": 1, "val_acc": 0.3}, {"epoch": 2, "seconds": 5.0, "val_acc": 0.9}],
                             milestones=(0.5, 0.9))
    assert [(m.epoch, m.seconds) for m in marks] == [(2, None), (2, None)]


def test_all_milestones_reached_leaves_no_open_row():
    marks = time_to_accuracy(rows((1.0, 0.99)), milestones=(0.9, 0.5))
    assert [(m.accuracy, m.epoch, m.seconds) for m in marks] == [(0.5, 1, 1.0), (0.9, 1, 1.0)]
