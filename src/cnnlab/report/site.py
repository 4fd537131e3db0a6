"""A static site of all runs: index.html with a sortable table, one self-contained page per run."""
from __future__ import annotations

import re
from pathlib import Path

from cnnlab.report import _format as show
from cnnlab.atomic import make_folder, write_text_atomically
from cnnlab.report.blocks import Paragraph, Section, Table, render_html
from cnnlab.report.compare import comparison_rows, comparison_table
from cnnlab.runfolder import RunData, RunFolderError, find_runs, load_run_data
from cnnlab.report.run_report import render_run_report

RUN_PAGES = "runs"  # sub-folder of the site holding one page per run

INDEX_HEADERS = ["run", "experiment", "seed", "status", "model", "epochs", "train acc", "val acc", "test acc",
                 "test loss", "params", "wall time"]


def _page_name(run_path: str) -> str:
    """A safe file name for a run's page (its path below the runs folder, kept readable)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_path) + ".html"


def _index_row(run: RunData) -> tuple[list[str], list[float | str | None]]:
    summary = run.summary or {}
    params = (summary.get("params") or {}).get("total")
    epochs = summary.get("epochs_completed", len(run.metrics) or None)
    seed = summary.get("seed", (run.config or {}).get("seed"))
    model = summary.get("model") or ((run.config or {}).get("model") or {}).get("name")
    accs = [run.final(k) for k in ("train_acc", "val_acc", "test_acc")]
    test_loss = run.final("test_loss")
    wall = summary.get("wall_seconds")
    shown = [run.run_id, run.name, show.ABSENT if seed is None else str(seed), str(summary.get("status") or show.ABSENT),
             str(model or show.ABSENT), show.integer(epochs)] + [show.percent(a) for a in accs] + [
        show.decimal(test_loss), show.integer(params), show.duration(wall)]
    values: list[float | str | None] = [run.run_id, run.name, seed, summary.get("status"), model, epochs] + accs + [
        test_loss, params, wall]
    return shown, [None if v is None else v for v in values]


def build_site(runs_root: Path, out_dir: Path) -> Path:
    """Write ``out_dir/index.html`` (sortable table of every run under ``runs_root``, then the
    per-experiment mean ± std table) and ``out_dir/runs/<run>.html`` (each run's full report).

    Runs that cannot be read are listed on the index with the reason instead of stopping the
    build. Returns the index path. Raises RunFolderError when ``runs_root`` holds no run.
    """
    runs_root, out_dir = Path(runs_root), Path(out_dir)
    if not runs_root.is_dir():
        raise RunFolderError(f"{runs_root} is not a folder; pass the folder that holds your runs (e.g. runs/)")
    run_dirs = [d for d in find_runs(runs_root) if out_dir.resolve() not in d.resolve().parents]
    if not run_dirs:
        raise RunFolderError(f"no run folders (folders holding config.yaml) under {runs_root}; train a run first")
    pages_dir = out_dir / RUN_PAGES
    make_folder(out_dir)
    make_folder(pages_dir)
    rows, values, links, readable, problems = [], [], [], [], []
    for run_dir in run_dirs:
        try:
            run = load_run_data(run_dir)
            page = render_run_report(run, back_link=("../index.html", "← all runs")).html
        except (RunFolderError, ValueError) as error:
            problems.append(str(error) if str(run_dir) in str(error) else f"{run_dir}: {error}")
            continue
        relative = run_dir.relative_to(runs_root).as_posix() if run_dir != runs_root else run.run_id
        page_name = _page_name(relative)  # nested runs (runs/sweep/<run>) may share a folder name
        write_text_atomically(pages_dir / page_name, page)
        shown, raw = _index_row(run)
        rows.append(shown)
        values.append(raw)
        links.append([f"{RUN_PAGES}/{page_name}"] + [None] * (len(shown) - 1))
        readable.append(run)
    sections = [Section("All runs", [
        Paragraph("Click a column header to sort; click again to reverse."),
        Table(headers=INDEX_HEADERS, rows=rows, sort_values=values, sortable=True, table_id="runs", links=links)])]
    if readable:
        sections.append(Section("Experiments (mean ± sample std over seeds)",
                                [comparison_table(comparison_rows(readable))]))
    if problems:
        sections.append(Section("Runs that could not be read", [Paragraph(p) for p in problems]))
    return write_text_atomically(out_dir / "index.html", render_html(f"cnnlab runs in {runs_root}", sections))
