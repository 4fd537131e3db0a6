"""What a run achieved, as the few lines a command prints at its end (a terminal and a log file alike).

    result: fast-cpu completed, 11/11 epochs (seed 0)
      test accuracy   93.12%   test loss 0.5123
      TTA accuracy    93.50%   (flip+translate)
      best val epoch  - (no validation split)
      wall time       8m 52s, 1,234 images/s
      report          runs/20261204-101500-fast-cpu/report.html
      weights         runs/20261204-101500-fast-cpu/model.safetensors

Pure functions of the run folder (summary.json, metrics.jsonl, config.yaml through
cnnlab.runfolder): the same block for a run just trained and for one read back later. A run that
stopped (interrupted, diverged) says so and what to do next (summary.json's "message", which names
the resume command of an interrupted run). ``seeds_outcome`` is the block of `--seeds N`: one line
per seed and a mean ± sample std line, as the comparison table computes it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

from cnnlab.report import _format as show
from cnnlab.report.compare import _stat, format_stat
from cnnlab.runfolder import (BEST_WEIGHTS, CONFIG, FINISHED, WEIGHTS, RunData, RunFolderError, read_config_dict,
                              read_metrics, read_summary)

REPORT = "report.html"
LABEL_WIDTH = 15   # "best val epoch" + a space: the values line up


def _line(label: str, value: str) -> str:
    return f"  {label:<{LABEL_WIDTH}} {value}"


def best_val_epoch(metrics: list[dict]) -> Optional[dict]:
    """The metrics row of the highest val_acc (the first of equals, as the best checkpoint keeps it);
    None when no epoch was validated (no validation split, or no epoch yet)."""
    best = None
    for row in metrics:
        if row.get("val_acc") is not None and (best is None or row["val_acc"] > best["val_acc"]):
            best = row
    return best


def _tta_mode(run: RunData) -> Optional[str]:
    tta = (run.config or {}).get("tta")
    return str(tta) if tta not in (None, False, "none", "") else None


def _epochs(summary: dict, run: RunData) -> str:
    done = summary.get("epochs_completed", len(run.metrics))
    total = summary.get("epochs")
    return f"{done}/{total} epochs" if total is not None else f"{done} epochs"


def _speed(summary: dict) -> str:
    speed = summary.get("images_per_sec")
    rate = f", {show.integer(speed)} images/s" if speed is not None else ""
    return show.duration(summary.get("wall_seconds")) + rate


def _best_val(run: RunData) -> str:
    best = best_val_epoch(run.metrics)
    if best is None:
        return "- (no validation split)" if run.metrics else "- (no epoch finished)"
    return f"{best['epoch']} of {len(run.metrics)}: val accuracy {show.percent(best['val_acc'])}"


def _read(run_dir: Path) -> RunData | str:
    """The run folder's summary, metrics and config (not its predictions: they can be large), or the
    one line that says why it has none."""
    try:
        run = RunData(run_dir=run_dir, summary=read_summary(run_dir), metrics=read_metrics(run_dir))
        if (run_dir / CONFIG).is_file():
            run.config = read_config_dict(run_dir)
    except RunFolderError as err:
        return f"result: none ({err})"
    if run.summary is None:
        return (f"result: {run.name} has no summary.json: it is still running or was killed; continue it with: "
                f"cnnlab train --resume {run_dir}")
    return run


def run_outcome(run_dir: str | Path) -> str:
    """The block (lines joined by newlines, no trailing newline) of the run folder ``run_dir``, paths
    shown as ``run_dir`` spells them; see the module doc."""
    run_dir = Path(run_dir)
    run = _read(run_dir)
    if isinstance(run, str):
        return run
    summary = run.summary or {}
    status = summary.get("status", "unknown")
    seed = f" (seed {summary['seed']})" if summary.get("seed") is not None else ""
    lines = [f"result: {run.name} {status}, {_epochs(summary, run)}{seed}"]
    finished = status in FINISHED
    if finished:
        loss = run.final("test_loss")
        lines.append(_line("test accuracy", f"{show.percent(run.final('test_acc'))}"
                           + (f"   test loss {show.decimal(loss)}" if loss is not None else "")))
        tta = (summary.get("final") or {}).get("test_tta_acc")
        if tta is not None:
            mode = _tta_mode(run)
            lines.append(_line("TTA accuracy", show.percent(tta) + (f"   ({mode})" if mode else "")))
    lines.append(_line("best val epoch", _best_val(run)))
    lines.append(_line("wall time", _speed(summary)))
    if finished:
        report = run_dir / REPORT
        lines.append(_line("report", str(report) if report.is_file()
                           else f"not written; write it with: cnnlab report {run_dir}"))
        weights = run_dir / WEIGHTS
        lines.append(_line("weights", str(weights) if weights.is_file() else f"missing ({weights})"))
    else:
        if (run_dir / BEST_WEIGHTS).is_file():
            lines.append(_line("best weights", str(run_dir / BEST_WEIGHTS)))
        lines.append(f"  {summary.get('message') or f'continue with: cnnlab train --resume {run_dir}'}")
    return "\n".join(lines)


def _seed_line(run_dir: Path, run: RunData | str) -> str:
    if isinstance(run, str):
        return f"  {run_dir.name}: {run}"
    summary = run.summary or {}
    seed = summary.get("seed", "?")
    status = summary.get("status", "unknown")
    parts = [f"  seed {seed}"]
    if status in FINISHED:
        parts.append(f"test accuracy {show.percent(run.final('test_acc'))}")
        tta = (summary.get("final") or {}).get("test_tta_acc")
        if tta is not None:
            parts.append(f"TTA {show.percent(tta)}")
    else:
        parts.append(f"{status}: not in the mean")
    best = best_val_epoch(run.metrics)
    if best is not None:
        parts.append(f"best val {show.percent(best['val_acc'])} (epoch {best['epoch']})")
    parts.append(show.duration(summary.get("wall_seconds")))
    report = run_dir / REPORT
    if report.is_file():
        parts.append(str(report))
    return "   ".join(parts)


def seeds_outcome(run_dirs: Iterable[str | Path]) -> str:
    """The block of `--seeds N`: a line per seed (test accuracy, TTA, best validation, wall time,
    report), then mean ± sample std (ddof=1) of the test accuracy (and TTA) over the finished seeds."""
    run_dirs = [Path(r) for r in run_dirs]
    runs = [_read(r) for r in run_dirs]
    done = [r for r in runs if not isinstance(r, str) and r.status in FINISHED]
    name = next((r.name for r in runs if not isinstance(r, str)), run_dirs[0].name if run_dirs else "-")
    lines = [f"result: {name} over {len(run_dirs)} seeds ({len(done)} finished)"]
    lines += [_seed_line(d, r) for d, r in zip(run_dirs, runs)]
    parts = [f"  mean ± std (n={len(done)})"]
    test = _stat([r.final("test_acc") for r in done])
    parts.append(f"test accuracy {format_stat('test_acc', test)}")
    tta = _stat([(r.summary.get("final") or {}).get("test_tta_acc") for r in done])
    if tta.n:
        parts.append(f"TTA {format_stat('test_tta_acc', tta)}")
    best = _stat([(best_val_epoch(r.metrics) or {}).get("val_acc") for r in done])
    if best.n:
        parts.append(f"best val {format_stat('val_acc', best)}")
    lines.append("   ".join(parts))
    return "\n".join(lines)


__all__ = ["REPORT", "best_val_epoch", "run_outcome", "seeds_outcome"]
