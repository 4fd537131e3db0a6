"""Robustness over seeds: clean, JPEG and mean-corruption accuracy of groups of runs, each number
read from the runs' ``cnnlab robust`` records (robust.json), mean ± sample std per group.

A run folder may hold two records: ``robust/robust.json`` (the corruptions, on a stratified test
subset) and ``robust-full/robust.json`` (``--test-subset 0 --corruptions none``: clean and JPEG on
every test image). Clean and JPEG accuracies are taken from the full record when there is one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from cnnlab.report.blocks import markdown_table
from cnnlab.report.compare import Stat, _stat, format_stat

FULL = "robust-full"
SUBSET = "robust"


def _read(path: Path) -> Optional[dict]:
    return json.loads(path.read_text()) if path.is_file() else None


@dataclass
class RobustRow:
    label: str
    runs: list[Path]
    clean: Stat
    jpeg: dict[str, Stat]          # quality -> accuracy
    mean_corruption: Stat
    clean_images: str              # "10,000" or "2,000 of 10,000"
    corruption_images: str

    def gap(self, quality: str) -> Optional[float]:
        """Clean minus JPEG accuracy of the group's means, in points of accuracy (0..1 units)."""
        j = self.jpeg.get(quality)
        if j is None or j.mean is None or self.clean.mean is None:
            return None
        return self.clean.mean - j.mean


def robust_row(label: str, runs: Sequence[Path]) -> RobustRow:
    """One group (the seeds of one recipe) from its runs' robust records; a run without any record
    is an error naming the command that makes it."""
    clean, jpeg, corr = [], {}, []
    clean_n, corr_n = set(), set()
    for run in runs:
        full, subset = _read(Path(run) / FULL / "robust.json"), _read(Path(run) / SUBSET / "robust.json")
        if full is None and subset is None:
            raise FileNotFoundError(f"{run}: no robust.json; run `cnnlab robust {run}` (and `cnnlab robust {run} "
                                    f"--test-subset 0 --corruptions none --out {run}/{FULL}` for every test image)")
        first = full or subset
        clean.append(first["clean"])
        clean_n.add(_images(first))
        for q, acc in first.get("jpeg", {}).items():
            jpeg.setdefault(q, []).append(acc)
        if subset is not None and subset.get("mean_corruption_accuracy") is not None:
            corr.append(subset["mean_corruption_accuracy"])
            corr_n.add(_images(subset))
    return RobustRow(label, list(runs), _stat(clean), {q: _stat(v) for q, v in jpeg.items()}, _stat(corr),
                     " / ".join(sorted(clean_n)), " / ".join(sorted(corr_n)) or "—")


def _images(record: dict) -> str:
    n, of = record["images"], record.get("subset_of", record["images"])
    return f"{n:,}" if n == of else f"{n:,} of {of:,}"


def robust_table(rows: Sequence[RobustRow], quality: str = "75") -> str:
    """Markdown: group, n, clean, JPEG at ``quality`` and its gap to clean, mean corruption accuracy."""
    body = []
    for r in rows:
        gap = r.gap(quality)
        body.append([r.label, str(len(r.runs)), format_stat("test_acc", r.clean),
                     format_stat("test_acc", r.jpeg.get(quality, Stat(None, None, 0))),
                     "—" if gap is None else f"{100 * gap:.2f}",
                     format_stat("test_acc", r.mean_corruption), r.clean_images, r.corruption_images])
    return markdown_table(["runs", "n", "clean test", f"JPEG q{quality} (4:2:0)", "gap (points)",
                           "mean corruption acc (15 x 5)", "images (clean, JPEG)", "images (corruptions)"], body)


__all__ = ["RobustRow", "robust_row", "robust_table"]
