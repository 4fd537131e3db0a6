"""Reports of cnnlab runs: curves, per-run HTML/Markdown reports, comparisons and a static site."""
from __future__ import annotations

from cnnlab.report.compare import compare_runs, plot_overlaid_curves
from cnnlab.report.curves import plot_curves
from cnnlab.report.run_report import write_run_report
from cnnlab.report.site import build_site
from cnnlab.report.task_pages import task_pages

__all__ = ["build_site", "compare_runs", "plot_curves", "plot_overlaid_curves", "task_pages", "write_run_report"]
