"""Compare runs: the summary table of report 003 (mean ± std over seeds) and overlaid curves."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from cnnlab.config import to_dict
from cnnlab.report import _format as show
from cnnlab.report._figures import new_figure, save_figure
from cnnlab.report.blocks import Paragraph, Section, Table, markdown_table, md_text, render_html
from cnnlab.report.curves import epoch_axis
from cnnlab.runfolder import FINISHED, RunData, load_run_data
from cnnlab.train.experiment import ExperimentConfig

# Config keys that do not change what an experiment measures: runs differing only in these are
# repeats of one experiment (the seed is what the mean ± std is taken over).
NOT_PART_OF_EXPERIMENT = ("seed", "description", "threads", "logging")
LABEL_KEYS_SHOWN = 3      # differing keys named in a row label; more are summarised as "+N more"
LABEL_VALUE_CHARS = 30    # a longer value (e.g. a layer list) is shortened in the label
# (column header, value key read by _value)
COLUMNS: tuple[tuple[str, str], ...] = (
    ("train loss", "train_loss"), ("train acc", "train_acc"), ("val loss", "val_loss"),
    ("val acc", "val_acc"), ("test acc", "test_acc"), ("params", "params"), ("epochs", "epochs"),
    ("wall time", "wall_seconds"),
)
# Shown only when some run has the value: the test set scored with test-time augmentation (config
# `tta`: flip, or flip+translate; runs that differ in it are separate rows), beside the plain test
# accuracy rather than in place of it.
OPTIONAL_COLUMNS: tuple[tuple[str, str], ...] = (("test acc (TTA)", "test_tta_acc"),)
FORMATS = ("md", "csv", "html")


@dataclass
class Stat:
    """Mean and sample standard deviation (ddof=1) over the runs that have the value; std is None when n < 2."""

    mean: float | None
    std: float | None
    n: int


@dataclass
class ComparisonRow:
    """One experiment (a resolved config less the seed): all its runs (seeds) aggregated."""

    experiment: str                 # label: the name, plus "(key=value, ...)" where its config differs
    runs: list[str]                 # finished runs: the n of the row
    seeds: list[object]
    stats: dict[str, Stat]
    unfinished: list[str] = field(default_factory=list)   # running, killed, interrupted or diverged: not averaged
    name: str = ""                  # the experiment name shared by every row of one name
    # dotted key -> value, against the name's main config; for the main config itself, empty unless
    # another config of the name has as many finished runs (then its own values of the keys that differ)
    differs: dict[str, str] = field(default_factory=dict)


def _value(run: RunData, key: str) -> float | None:
    summary = run.summary or {}
    if key == "params":
        total = (summary.get("params") or {}).get("total")
        return None if total is None else float(total)
    if key == "epochs":
        done = summary.get("epochs_completed", len(run.metrics) or None)
        return None if done is None else float(done)
    if key == "wall_seconds":
        seconds = summary.get("wall_seconds")
        return None if seconds is None else float(seconds)
    return run.final(key)


def _stat(values: Sequence[float | None]) -> Stat:
    present = np.array([v for v in values if v is not None], dtype=np.float64)
    if present.size == 0:
        return Stat(None, None, 0)
    std = float(np.std(present, ddof=1)) if present.size > 1 else None
    return Stat(float(present.mean()), std, int(present.size))


def _flatten(mapping: dict, prefix: str = "") -> dict[str, object]:
    """{"optimizer": {"lr": 0.1}} -> {"optimizer.lr": 0.1}; a list of mappings by index, as the
    overrides name it ({"stages": [{"steps": 100}]} -> {"stages.0.steps": 100}), so that runs differing in
    one stage's length are labelled `stages.0.steps=100`; other lists and scalars are leaves."""
    flat: dict[str, object] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            flat.update(_flatten({str(i): item for i, item in enumerate(value)}, f"{name}."))
        else:
            flat[name] = value
    return flat


def experiment_config(run: RunData) -> dict[str, str]:
    """The run's resolved config as dotted key -> canonical JSON value, less the keys that do not
    change the experiment (seed, description, threads, logging), keys it lacks filled with today's
    defaults. Empty without config.yaml."""
    saved = _encoded(run.config or {})
    if not saved:
        return saved
    # A key that an older run's config.yaml lacks (say sync_bn, added later) ran at its default, since a
    # new key defaults to the old behaviour: fill it in, so the old run and a re-run with today's code are
    # one experiment. A default whose key is a branch or a leaf of a saved key (task: {} vs task.name) is
    # not filled in.
    for key, value in _default_config().items():
        if key not in saved and not any(k.startswith(key + ".") or key.startswith(k + ".") for k in saved):
            saved[key] = value
    return saved


def _default_config() -> dict[str, str]:
    return _encoded(to_dict(ExperimentConfig()))


def _encoded(config: dict) -> dict[str, str]:
    """A config less the keys outside the experiment, as dotted key -> canonical JSON value."""
    kept = {k: v for k, v in config.items() if k not in NOT_PART_OF_EXPERIMENT}
    return {key: json.dumps(value, sort_keys=True, default=str) for key, value in _flatten(kept).items()}


def _label_value(encoded: str | None) -> str:
    """A config value as a label shows it: epochs=3, optimizer.name=adam, model.kwargs={} ..."""
    if encoded is None:
        return "(unset)"
    value = json.loads(encoded)
    if isinstance(value, str):
        text = value
    elif isinstance(value, (list, dict)):
        text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    elif value is None or isinstance(value, bool):
        text = json.dumps(value)  # null, true, false as in config.yaml
    else:
        text = str(value)
    return text if len(text) <= LABEL_VALUE_CHARS else text[:LABEL_VALUE_CHARS - 1] + "…"


def _differences(config: dict[str, str], reference: dict[str, str]) -> dict[str, str]:
    keys = sorted(set(config) | set(reference))
    return {key: _label_value(config.get(key)) for key in keys if config.get(key) != reference.get(key)}


def _label(name: str, differs: dict[str, str]) -> str:
    if not differs:
        return name
    shown = [f"{key}={value}" for key, value in list(differs.items())[:LABEL_KEYS_SHOWN]]
    if len(differs) > LABEL_KEYS_SHOWN:
        shown.append(f"+{len(differs) - LABEL_KEYS_SHOWN} more")
    return f"{name} ({', '.join(shown)})"


def _tied_main_differences(main: tuple, groups: dict[tuple, list[RunData]],
                           configs: dict[tuple, dict[str, str]]) -> dict[str, str]:
    """The main config goes unlabelled when most runs of its name share it. When another config has
    as many finished runs (002-d: one for each of N = 0 / 100 / 1,000 / 2,500 frozen steps), which one
    is "main" is only first-seen order, and an unlabelled row would read as the recipe's default:
    label it with its own values of every key in which those configs differ from it. Runs are
    counted finished (a killed smoke run does not make a tie)."""
    def finished(k: tuple) -> int:
        return sum(r.status in FINISHED for r in groups[k])
    tied = [k for k in groups if k != main and configs[k] and finished(k) >= finished(main)]
    keys = sorted({key for k in tied for key in _differences(configs[k], configs[main])})
    return {key: _label_value(configs[main].get(key)) for key in keys}


def comparison_rows(runs: Iterable[Path | RunData]) -> list[ComparisonRow]:
    """Load runs (folders, or RunData already read) and group them into experiments.

    An experiment is the resolved config (config.yaml) less seed, description, threads and
    logging: seeds of one config share a row, while a run of the same ``name`` with another
    config (say a 3-epoch smoke run, ``-o epochs=3``) gets its own row, labelled with what differs
    from the most common config of that name, e.g. ``004-a (epochs=3)``; when no config has more finished runs
    than every other, the first one is labelled too, with its own values of those keys. Only finished runs
    (completed, early_stopped) enter the mean ± std and n; the others are named in ``unfinished``.
    Rows keep first-seen order of names; within a name the most common config comes first.
    """
    loaded = [r if isinstance(r, RunData) else load_run_data(Path(r)) for r in runs]
    if not loaded:
        raise ValueError("no runs to compare: pass at least one run folder")
    by_name: dict[str, dict[tuple, list[RunData]]] = {}
    configs: dict[tuple, dict[str, str]] = {}
    for run in loaded:
        config = experiment_config(run)
        key = (run.name, tuple(sorted(config.items())))
        configs[key] = config
        by_name.setdefault(run.name, {}).setdefault(key, []).append(run)
    rows = []
    for name, groups in by_name.items():
        # the main config of a name: the one most of its runs share (ties: first seen), never an unknown one
        main = max(groups, key=lambda k: (bool(configs[k]), len(groups[k])))
        for key in [main] + [k for k in groups if k != main]:
            members = groups[key]
            # Only finished runs enter a mean: a run still training (or stopped) has no final numbers yet.
            finished = [r for r in members if r.status in FINISHED]
            stats = {stat_key: _stat([_value(r, stat_key) for r in finished])
                     for _, stat_key in COLUMNS + OPTIONAL_COLUMNS}
            seeds = [(r.summary or {}).get("seed", (r.config or {}).get("seed")) for r in finished]
            if key == main:
                differs = _tied_main_differences(main, groups, configs)
            elif not configs[key]:  # no config.yaml: cannot tell what it ran, so never pooled with the others
                differs = {"config.yaml": "absent"}
            else:
                differs = _differences(configs[key], configs[main])
            rows.append(ComparisonRow(experiment=_label(name, differs), runs=[r.run_id for r in finished],
                                      seeds=seeds, stats=stats,
                                      unfinished=[r.run_id for r in members if r.status not in FINISHED],
                                      name=name, differs=differs))
    return rows


def _show(key: str, value: float | None) -> str:
    if key.endswith("_acc"):
        return show.percent(value)
    if key.endswith("_loss"):
        return show.decimal(value)
    if key == "wall_seconds":
        return show.duration(value)
    if key == "params":
        return show.integer(value)
    return show.decimal(value, 1) if value is not None and value != int(value) else show.integer(value)


def format_stat(key: str, stat: Stat) -> str:
    """"82.21% ± 0.35%" for accuracies over seeds, the plain value for one run, "—" when absent."""
    if stat.mean is None:
        return show.ABSENT
    if stat.std is None or (stat.std == 0 and key in ("params", "epochs")):  # same model/length: no spread to show
        return _show(key, stat.mean)
    if key.endswith("_acc"):
        return f"{100 * stat.mean:.2f} ± {100 * stat.std:.2f}%"
    if key.endswith("_loss"):
        return f"{stat.mean:.4f} ± {stat.std:.4f}"
    return f"{_show(key, stat.mean)} ± {_show(key, stat.std)}"


def table_columns(rows: Sequence[ComparisonRow]) -> tuple[tuple[str, str], ...]:
    """COLUMNS, with each optional column placed after "test acc" when at least one row has its value."""
    present = tuple(col for col in OPTIONAL_COLUMNS if any(row.stats[col[1]].n for row in rows))
    at = next(i for i, (_, key) in enumerate(COLUMNS) if key == "test_acc") + 1
    return COLUMNS[:at] + present + COLUMNS[at:]


def comparison_table(rows: Sequence[ComparisonRow]) -> Table:
    """The comparison as a format-neutral table (sortable in HTML by raw mean values)."""
    columns = table_columns(rows)
    headers = ["experiment", "n"] + [header for header, _ in columns]
    shown = [[row.experiment, str(len(row.runs))] + [format_stat(key, row.stats[key]) for _, key in columns]
             for row in rows]
    values = [[row.experiment, len(row.runs)] + [row.stats[key].mean for _, key in columns] for row in rows]
    return Table(headers=headers, rows=shown, sort_values=values, sortable=True, table_id="comparison")


def _csv(rows: Sequence[ComparisonRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = table_columns(rows)
    header = ["experiment", "n", "runs"]
    for _, key in columns:
        header += [f"{key}_mean", f"{key}_std"]
    writer.writerow(header)
    for row in rows:
        line: list[object] = [row.experiment, len(row.runs), ";".join(row.runs)]
        for _, key in columns:
            stat = row.stats[key]
            line += ["" if stat.mean is None else repr(stat.mean), "" if stat.std is None else repr(stat.std)]
        writer.writerow(line)
    return buffer.getvalue()


def compare_runs(run_dirs: Iterable[Path], fmt: str = "md") -> str:
    """The summary table of report 003 for ``run_dirs``: one row per experiment.

    Columns: experiment, n (runs), train loss, train acc, val loss, val acc, test acc, test acc
    (TTA) when some run scored it, params, epochs, wall time. Runs sharing a config up to the
    seed (see ``comparison_rows``) are one row with mean ± sample std (ddof=1); a same-name run with
    another config is another row.
    ``fmt``: "md" (Markdown table), "csv" (raw means and stds), "html" (a self-contained page
    with a sortable table).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    rows = comparison_rows(run_dirs)
    if fmt == "csv":
        return _csv(rows)
    table = comparison_table(rows)
    note = ("Values are mean ± sample standard deviation (ddof=1) over the n finished runs (seeds) of an experiment; "
            "runs of one name with another config are separate rows, labelled with the keys that differ.")
    left_out = [run for row in rows for run in row.unfinished]
    if left_out:
        note += f" Not finished, so not averaged: {', '.join(left_out)}."
    if fmt == "md":
        return markdown_table(table.headers, table.rows) + "\n\n" + md_text(note) + "\n"
    return render_html("cnnlab comparison", [Section("Runs", [table, Paragraph(note)])])


def plot_overlaid_curves(run_dirs: Iterable[Path], out_png: Path, title: str = "") -> Path:
    """Loss and accuracy per epoch of several runs on one two-panel figure.

    Each run has one colour: train solid, validation dashed. Written atomically; returns ``out_png``.
    """
    runs = [load_run_data(Path(d)) for d in run_dirs]
    if not runs:
        raise ValueError("no runs to plot: pass at least one run folder")
    fig = new_figure(12, 4.5)
    loss_ax, acc_ax = fig.subplots(1, 2)
    colours = [f"C{i % 10}" for i in range(len(runs))]
    last_epoch = max((int(r["epoch"]) for run in runs for r in run.metrics), default=1)
    for run, colour in zip(runs, colours):
        label = f"{run.name} (s{(run.summary or {}).get('seed')})" if run.summary else run.run_id
        for ax, key, scale in ((loss_ax, "loss", 1.0), (acc_ax, "acc", 100.0)):
            for split, style, suffix in (("train", "-", "train"), ("val", "--", "val")):
                points = [(r["epoch"], r[f"{split}_{key}"] * scale) for r in run.metrics if r.get(f"{split}_{key}") is not None]
                if points:
                    epochs, values = zip(*points)
                    ax.plot(epochs, values, style, color=colour, label=f"{label} {suffix}")
    for ax, name in ((loss_ax, "loss"), (acc_ax, "accuracy (%)")):
        epoch_axis(ax, last_epoch)
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    loss_ax.set_title("loss (solid: train, dashed: validation)")
    acc_ax.set_title("accuracy")
    if title:
        fig.suptitle(title)
    return save_figure(fig, Path(out_png))
