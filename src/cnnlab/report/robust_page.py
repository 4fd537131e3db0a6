"""The robustness page of a run: ``<out>/robust.html`` + ``robust.md`` + ``figures/`` beside ``robust.json``.

A summary (clean, JPEG, mean corruption accuracy), a table of accuracy per corruption x severity,
and a plot of accuracy against severity per corruption group. ``robust_section`` is the same
content as one section of the run's report (the report adds it when ``<run>/robust/robust.json``
exists: ``cnnlab robust RUN`` then ``cnnlab report RUN``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from cnnlab.atomic import write_text_atomically
from cnnlab.data.corrupt import BENCHMARK, GROUPS, group_of
from cnnlab.report._figures import figure_to_png_bytes, new_figure
from cnnlab.report.blocks import Figure, Paragraph, Section, Table, figures_of, render_html, render_markdown, write_figures

PAGE = "robust.html"


def _pct(value: Optional[float]) -> str:
    return "" if value is None else f"{100 * value:.2f}%"


def _label(name: str) -> str:
    return name.replace("_", " ")


def robustness_figure(result: dict[str, Any]):
    """Accuracy (%) against severity, one panel per corruption group, clean accuracy dashed."""
    groups = [g for g in GROUPS if any(group_of(n) == g for n in result["corruptions"])]
    fig = new_figure(3.2 * max(1, len(groups)), 3.4)
    axes = fig.subplots(1, max(1, len(groups)), sharey=True, squeeze=False)[0]
    for ax, group in zip(axes, groups):
        for name, by_sev in result["corruptions"].items():
            if group_of(name) != group:
                continue
            sev = [int(s) for s in by_sev]
            style = "-o" if name in BENCHMARK else "--o"
            ax.plot(sev, [100 * a for a in by_sev.values()], style, markersize=3, label=_label(name))
        ax.axhline(100 * result["clean"], color="grey", linestyle=":", linewidth=1, label="clean")
        ax.set_title(group)
        ax.set_xlabel("severity")
        ax.set_xticks(result.get("severities") or [1, 2, 3, 4, 5])
        ax.legend(fontsize=6)
    axes[0].set_ylabel("accuracy (%)")
    return fig


def summary_lines(result: dict[str, Any]) -> list[str]:
    mca = result.get("mean_corruption_accuracy")
    jpeg = ", ".join(f"q{q} {_pct(a)}" for q, a in result["jpeg"].items())
    lines = [f"clean {_pct(result['clean'])} on {result['images']:,} of {result['subset_of']:,} "
             f"{result['split']} images (stratified subset, seed {result['seed']})"]
    if jpeg:
        lines.append(f"JPEG ({result.get('jpeg_subsampling', '4:2:0')}): {jpeg}")
    if mca is not None:
        lines.append(f"mean corruption accuracy (15 CIFAR-10-C corruptions x 5 severities) {_pct(mca)}")
    elif result["corruptions"]:
        lines.append(f"mean accuracy over the corruptions run {_pct(result['mean_benchmark_run'] or result['mean_all'])} "
                     "(not the benchmark mean: not every corruption or severity was run)")
    return lines


def robust_blocks(result: dict[str, Any], figure_name: str = "robustness.png") -> list:
    blocks: list[Any] = [Paragraph(line) for line in summary_lines(result)]
    blocks.append(Paragraph(
        "Corruptions of CIFAR-10-C (Hendrycks & Dietterich 2019), generated on the fly with the benchmark's "
        "CIFAR parameters (cnnlab.data.corrupt); JPEG with Pillow at 4:2:0. "
        + ("" if result.get("image_size", 32) == 32 else
           f"These images are {result['image_size']} px: the parameters are CIFAR's (32 px), so this is not the "
           "benchmark. ")
        + "Extra corruptions (speckle noise, Gaussian blur, spatter, saturate) are not in the mean."))
    sev = [str(s) for s in result.get("severities", [1, 2, 3, 4, 5])]
    rows, sort = [], []
    for name, by_sev in result["corruptions"].items():
        mean = sum(by_sev.values()) / len(by_sev)
        rows.append([_label(name), group_of(name) + ("" if name in BENCHMARK else " (extra)")]
                    + [_pct(by_sev.get(s)) for s in sev] + [_pct(mean)])
        sort.append([_label(name), group_of(name)] + [by_sev.get(s) for s in sev] + [mean])
    for q, acc in result["jpeg"].items():
        rows.append([f"JPEG q{q}", "digital (4:2:0)"] + [""] * len(sev) + [_pct(acc)])
        sort.append([f"JPEG q{q}", "digital"] + [None] * len(sev) + [acc])
    blocks.append(Table(["corruption", "group"] + [f"severity {s}" for s in sev] + ["mean"], rows,
                        sort_values=sort, sortable=True, table_id="robustness"))
    if result["groups"]:
        blocks.append(Table(["group", "mean accuracy"], [[g, _pct(a)] for g, a in result["groups"].items()]))
    if result["corruptions"]:
        blocks.append(Figure(figure_name, figure_to_png_bytes(robustness_figure(result)),
                             "accuracy against severity per corruption group (dotted: clean accuracy)"))
    return blocks


def robust_section(result: dict[str, Any]) -> Section:
    """The robustness results as one section of a report."""
    return Section("Robustness (JPEG and common corruptions)", robust_blocks(result))


def write_robust_page(result: dict[str, Any], out_dir: str | Path, run_name: str) -> Path:
    """Write robust.html, robust.md and figures/ into ``out_dir``; returns the HTML page."""
    out_dir = Path(out_dir)
    title = f"Robustness of {run_name}"
    sections = [Section("Robustness", robust_blocks(result))]
    write_figures(out_dir / "figures", figures_of(sections))
    write_text_atomically(out_dir / "robust.md", render_markdown(title, sections))
    return write_text_atomically(out_dir / PAGE, render_html(title, sections))


def format_robustness(result: dict[str, Any]) -> str:
    """The terminal table: one line per corruption, accuracy per severity."""
    from cnnlab.report.blocks import markdown_table

    sev = [str(s) for s in result.get("severities", [1, 2, 3, 4, 5])]
    rows = [[_label(n), group_of(n)] + [f"{100 * v[s]:.1f}" for s in sev] for n, v in result["corruptions"].items()]
    rows += [[f"JPEG q{q}", "4:2:0"] + [""] * (len(sev) - 1) + [f"{100 * a:.1f}"] for q, a in result["jpeg"].items()]
    return markdown_table(["corruption", "group"] + [f"s{s}" for s in sev], rows) + "\n" + "\n".join(summary_lines(result))


__all__ = ["format_robustness", "robust_section", "robustness_figure", "write_robust_page"]
