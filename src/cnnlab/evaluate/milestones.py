"""Time to accuracy: when a run first reached each accuracy milestone, read from its metrics rows.

Accuracy per minute is what speed means to a user, so a run's report states the training time to
50%, 60%, ... validation accuracy. The time is the sum of the per-epoch ``seconds`` of
metrics.jsonl up to and including the first epoch at or above the milestone: training steps only
(evaluation, checkpoints and data loading excluded), resolved to whole epochs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

# Fractions of correctly classified images; 0.94 is the usual CIFAR-10 speed-record target.
DEFAULT_MILESTONES = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.94)


@dataclass(frozen=True)
class Milestone:
    accuracy: float                  # the milestone, a fraction
    epoch: Optional[int]             # the first epoch (1-based) at or above it; None: not reached
    seconds: Optional[float]         # training seconds up to the end of that epoch


def _finite(value) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def time_to_accuracy(rows: Iterable[dict], milestones: Sequence[float] = DEFAULT_MILESTONES,
                     key: str = "val_acc") -> list[Milestone]:
    """The reached milestones in order, then the first one not reached (epoch None), if any.

    Rows without ``key`` (a run without a validation split) reach nothing; a row without
    ``seconds`` makes the times after it unknown (None) rather than wrong.
    """
    rows = list(rows)
    reached: list[Milestone] = []
    pending = sorted(set(float(m) for m in milestones))
    elapsed: Optional[float] = 0.0
    for index, row in enumerate(rows):
        seconds = _finite(row.get("seconds"))
        elapsed = elapsed + seconds if (elapsed is not None and seconds is not None) else None
        accuracy = _finite(row.get(key))
        while pending and accuracy is not None and accuracy >= pending[0]:
            reached.append(Milestone(pending.pop(0), int(row.get("epoch", index + 1)), elapsed))
    if pending:
        reached.append(Milestone(pending[0], None, None))
    return reached


__all__ = ["DEFAULT_MILESTONES", "Milestone", "time_to_accuracy"]
