"""Learning-rate schedules as pure functions of the optimizer step.

A pure function (no scheduler object) means resuming a run needs only the step count, and the
LR a run used at any step can be recomputed and plotted without running it.

Epochs here are 0-based indices, as Keras passes them to a LearningRateScheduler callback (the
1-based number in cnnlab's log, "epoch 52/100", is index 51). `piecewise` milestones are the
0-based epoch indices at which the next value starts: milestones [51, 76] with values [a, b, c]
give a for indices 0..50, b for 51..75 and c from 76 on, i.e. Keras' `if epoch > 50: b` becomes
milestone 51 (a Keras condition `epoch > k` is milestone k + 1, `epoch >= k` is milestone k).
"""

from __future__ import annotations

import math

from cnnlab.train.options import ScheduleConfig


def lr_at(step: int, steps_per_epoch: int, total_epochs: int, base_lr: float, cfg: ScheduleConfig) -> float:
    """Learning rate for 0-based optimizer `step` (the LR used to take that step)."""
    if steps_per_epoch < 1:
        raise ValueError("steps_per_epoch must be >= 1")
    total_steps = max(1, steps_per_epoch * total_epochs)
    epoch = step // steps_per_epoch            # 0-based epoch this step belongs to
    progress = min(1.0, step / max(1, total_steps - 1))    # 0 at the first step, 1 at the last

    if cfg.name == "constant":
        lr = base_lr
    elif cfg.name == "step":
        lr = base_lr * cfg.gamma ** (epoch // cfg.step_size)
    elif cfg.name == "piecewise":
        # values[i] from 0-based epoch milestones[i-1] on (inclusive); see the module docstring.
        passed = sum(1 for m in cfg.milestones if epoch >= m)
        lr = cfg.values[passed]
    elif cfg.name == "inverse_time":
        # Keras 2 optimizers' `decay`: lr_t = lr / (1 + decay * iterations), updated every batch.
        lr = base_lr / (1.0 + cfg.decay * step)
    elif cfg.name == "cosine":
        lr = cfg.min_lr + 0.5 * (base_lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))
    elif cfg.name == "onecycle":
        peak = cfg.max_lr if cfg.max_lr is not None else base_lr
        start = peak / cfg.div_factor
        end = start / cfg.final_div_factor
        rising = progress < cfg.pct_start
        t = progress / cfg.pct_start if rising else (progress - cfg.pct_start) / (1 - cfg.pct_start)
        # The share of the way done: half-cosine, or straight (anneal: linear).
        done = 0.5 * (1 - math.cos(math.pi * t)) if cfg.anneal == "cos" else t
        lr = start + (peak - start) * done if rising else peak + (end - peak) * done
    else:  # options.py validates names; this guards against a new name without a formula
        raise ValueError(f"unknown schedule {cfg.name!r}")

    warmup_steps = cfg.warmup_epochs * steps_per_epoch
    if warmup_steps > 0 and step < warmup_steps:
        lr *= (step + 1) / warmup_steps
    return lr


def lr_curve(steps_per_epoch: int, total_epochs: int, base_lr: float, cfg: ScheduleConfig) -> list[float]:
    """The LR of every step of a run, for plots and tests."""
    return [lr_at(s, steps_per_epoch, total_epochs, base_lr, cfg) for s in range(steps_per_epoch * total_epochs)]
