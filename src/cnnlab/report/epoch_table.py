"""Time to accuracy over seeds: test accuracy after each epoch against the training time spent so far,
read from the runs' metrics.jsonl (a run trained with ``monitor_test: true`` logs ``test_acc`` per epoch).

Training time is the sum of the per-epoch ``seconds`` (training steps only: evaluation, checkpoints and
data loading excluded, as cnnlab.evaluate.milestones counts it); the run's whole wall time is in its
summary.json. Every number is a mean ± sample std over the group's runs.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from cnnlab.evaluate.milestones import time_to_accuracy
from cnnlab.report.blocks import markdown_table
from cnnlab.report.compare import Stat, _stat, format_stat
from cnnlab.runfolder import read_metrics


@dataclass
class EpochRow:
    epoch: int
    runs: int                      # runs that logged this epoch's accuracy
    seconds: Stat                  # cumulative training seconds at the end of the epoch
    accuracy: Stat                 # a fraction


def _number(value) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _rows_of(run: Path, key: str) -> list[dict]:
    rows = read_metrics(run)
    if not any(_number(r.get(key)) is not None for r in rows):
        raise ValueError(f"{run}: metrics.jsonl has no {key!r} per epoch; train with `-o monitor_test=true` "
                         f"to log test accuracy after every epoch")
    return rows


def epoch_rows(runs: Sequence[Path], key: str = "test_acc") -> list[EpochRow]:
    """One row per epoch, over the runs that reached it."""
    per_epoch: dict[int, tuple[list, list]] = {}
    for run in runs:
        elapsed: Optional[float] = 0.0
        for index, row in enumerate(_rows_of(Path(run), key)):
            seconds = _number(row.get("seconds"))
            elapsed = elapsed + seconds if (elapsed is not None and seconds is not None) else None
            accuracy = _number(row.get(key))
            if accuracy is None:
                continue
            times, accs = per_epoch.setdefault(int(row.get("epoch", index + 1)), ([], []))
            times.append(elapsed)
            accs.append(accuracy)
    return [EpochRow(epoch, len(accs), _stat(times), _stat(accs)) for epoch, (times, accs) in sorted(per_epoch.items())]


def _minutes(stat: Stat) -> str:
    if stat.mean is None:
        return "—"
    text = f"{stat.mean / 60:.2f}"
    return text if stat.std is None else f"{text} ± {stat.std / 60:.2f}"


def epoch_table(rows: Sequence[EpochRow]) -> str:
    """Markdown: epoch, runs, training minutes so far, test accuracy."""
    return markdown_table(["epoch", "runs", "training min so far", "test accuracy"],
                          [[str(r.epoch), str(r.runs), _minutes(r.seconds), format_stat("test_acc", r.accuracy)]
                           for r in rows])


def summary_cells(runs: Sequence[Path], target: float, key: str = "test_acc",
                  tta_target: Optional[float] = None) -> list[str]:
    """n, final test accuracy, TTA accuracy, training minutes, wall minutes of the run, runs reaching
    ``target`` and their mean training minutes to it; with ``tta_target``, also the runs whose final
    TTA accuracy reached it (TTA is scored once, after the last epoch, so it has no time of its own)."""
    finals, tta, train_s, wall_s, reach_s = [], [], [], [], []
    for run in runs:
        rows = _rows_of(Path(run), key)
        summary_path = Path(run) / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        final = summary.get("final") or {}
        finals.append(_number(final.get("test_acc")))
        tta.append(_number(final.get("test_tta_acc")))
        train_s.append(sum(_number(r.get("seconds")) or 0.0 for r in rows))
        wall_s.append(_number(summary.get("wall_seconds")))
        mark = time_to_accuracy(rows, milestones=[target], key=key)[0]
        if mark.epoch is not None and mark.seconds is not None:
            reach_s.append(mark.seconds)
    reached = f"{len(reach_s)} of {len(runs)}"
    if reach_s:
        reached += f", {_minutes(_stat(reach_s))} min"
    cells = [str(len(runs)), format_stat("test_acc", _stat(finals)), format_stat("test_acc", _stat(tta)),
             _minutes(_stat(train_s)), _minutes(_stat(wall_s)), reached]
    if tta_target is not None:
        cells.append(f"{sum(1 for a in tta if a is not None and a >= tta_target)} of {len(runs)}")
    return cells


def summary_headers(target: float, tta_target: Optional[float] = None) -> list[str]:
    headers = ["n", "test (final)", "test with TTA", "training min", "run wall min",
               f"runs reaching {100 * target:g}%, training min to it"]
    if tta_target is not None:
        headers.append(f"runs at {100 * tta_target:g}% with TTA")
    return headers


__all__ = ["EpochRow", "epoch_rows", "epoch_table", "summary_cells", "summary_headers"]
