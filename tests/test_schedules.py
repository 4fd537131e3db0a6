"""Every LR schedule, checked at steps where the answer is known by hand."""
import math

import pytest

from cnnlab.train.options import ScheduleConfig
from cnnlab.train.schedules import lr_at, lr_curve

SPE, EPOCHS, LR = 10, 10, 0.1   # steps per epoch, epochs, base LR


def at(step, **kw):
    return lr_at(step, SPE, EPOCHS, LR, ScheduleConfig(**kw))


def test_constant():
    assert {at(s) for s in range(SPE * EPOCHS)} == {LR}


def test_step_every_three_epochs():
    assert at(0, name="step", step_size=3, gamma=0.5) == LR
    assert at(29, name="step", step_size=3, gamma=0.5) == LR              # epoch 2: before the first drop
    assert at(30, name="step", step_size=3, gamma=0.5) == pytest.approx(LR * 0.5)
    assert at(60, name="step", step_size=3, gamma=0.5) == pytest.approx(LR * 0.25)


def test_piecewise_by_epoch_as_report_004d():
    kw = dict(name="piecewise", milestones=[5, 8], values=[1e-3, 5e-4, 3e-4])
    assert at(0, **kw) == 1e-3 and at(49, **kw) == 1e-3          # epochs 0..4
    assert at(50, **kw) == 5e-4 and at(79, **kw) == 5e-4         # epochs 5..7
    assert at(80, **kw) == 3e-4


def test_inverse_time_is_keras_decay_per_step():
    # Keras 2: lr_t = lr / (1 + decay * iterations)
    assert at(0, name="inverse_time", decay=1e-2) == LR
    assert at(50, name="inverse_time", decay=1e-2) == pytest.approx(LR / 1.5)


def test_cosine_endpoints_and_midpoint():
    assert at(0, name="cosine", min_lr=0.0) == pytest.approx(LR)
    assert lr_at(50, 101, 1, LR, ScheduleConfig(name="cosine")) == pytest.approx(LR / 2)   # halfway of 101 steps
    assert at(99, name="cosine", min_lr=0.01) == pytest.approx(0.01)                          # last step: the floor


def test_onecycle_rises_to_peak_then_falls():
    curve = lr_curve(SPE, EPOCHS, LR, ScheduleConfig(name="onecycle", max_lr=1.0, pct_start=0.3))
    peak_step = max(range(len(curve)), key=curve.__getitem__)
    assert peak_step in (29, 30) and max(curve) == pytest.approx(1.0, rel=1e-2)
    assert curve[0] == pytest.approx(1.0 / 25)
    assert curve[-1] == pytest.approx(1.0 / 25 / 1e4)   # ends at start / final_div_factor


def test_linear_warmup_then_schedule():
    kw = dict(name="constant", warmup_epochs=2)
    assert at(0, **kw) == pytest.approx(LR / 20)
    assert at(9, **kw) == pytest.approx(LR / 2)
    assert at(19, **kw) == pytest.approx(LR)
    assert at(20, **kw) == LR


def test_schedule_curve_is_monotone_for_step_schedules():
    curve = lr_curve(SPE, EPOCHS, LR, ScheduleConfig(name="step", step_size=2, gamma=0.1))
    assert all(a >= b for a, b in zip(curve, curve[1:])) and not math.isclose(curve[0], curve[-1])
