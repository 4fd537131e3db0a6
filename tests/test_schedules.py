"""Every LR schedule, checked at steps where the answer is known by hand."""
import math
from pathlib import Path

import pytest

from cnnlab.train.experiment import load_experiment
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


# Report 004-d's Keras callback, transcribed literally (LearningRateScheduler passes the 0-based
# epoch index). As written, `elif epoch > 75` is unreachable: epoch > 50 catches it first.
def keras_lr_as_written(epoch):
    lrate = 0.001
    if epoch > 50:
        lrate = 0.0005
    elif epoch > 75:
        lrate = 0.0003
    return lrate


# The evident intent: the same thresholds with the branches ordered so 3e-4 is reached.
def keras_lr_intended(epoch):
    lrate = 0.001
    if epoch > 75:
        lrate = 0.0003
    elif epoch > 50:
        lrate = 0.0005
    return lrate


RECIPE_004D = Path(__file__).resolve().parents[1] / "recipes" / "004-d.yaml"


def _epoch_lrs(cfg, steps_per_epoch=3):
    """Our LR at the first and last step of every epoch 0..epochs-1 (asserting they agree)."""
    lrs = []
    for epoch in range(cfg.epochs):
        first, last = (lr_at(epoch * steps_per_epoch + s, steps_per_epoch, cfg.epochs, cfg.optimizer.lr, cfg.schedule)
                       for s in (0, steps_per_epoch - 1))
        assert first == last, f"LR changes inside epoch {epoch}"
        lrs.append(first)
    return lrs


@pytest.mark.parametrize("overrides, keras_fn", [
    ([], keras_lr_intended),                                               # the recipe as shipped
    (["schedule.values=[0.001,0.0005,0.0005]"], keras_lr_as_written),      # the report's code as written
])
def test_recipe_004d_matches_report_keras_schedule_every_epoch(overrides, keras_fn):
    cfg = load_experiment(RECIPE_004D, overrides)
    assert cfg.epochs == 100 and cfg.schedule.name == "piecewise" and cfg.schedule.warmup_epochs == 0
    ours = _epoch_lrs(cfg)
    expected = [keras_fn(e) for e in range(100)]
    wrong = [(e, o, x) for e, (o, x) in enumerate(zip(ours, expected)) if o != x]
    assert not wrong, f"(0-based epoch, ours, Keras) where they differ: {wrong}"


def test_keras_transcriptions_differ_only_where_the_elif_is_unreachable():
    # Guards the two transcriptions above: they agree up to index 75 and differ from 76 on.
    assert [keras_lr_as_written(e) for e in range(76)] == [keras_lr_intended(e) for e in range(76)]
    assert keras_lr_as_written(50) == 0.001 and keras_lr_as_written(51) == 0.0005
    assert keras_lr_intended(75) == 0.0005 and keras_lr_intended(76) == 0.0003 and keras_lr_as_written(99) == 0.0005
