"""The evaluation page of a siamese run (report 002-c): ``<run>/siamese.html`` + ``siamese.md``.

Its own figures go to ``<run>/siamese_figures/`` (the run report owns ``figures/`` and removes
files there that it did not draw); the numbers also go to ``<run>/siamese.json``. The report's
metric, a one-vs-rest linear classifier on the embeddings, is the first row of the table, next to
the report's number for the same loss and sampler.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from matplotlib import colormaps

from cnnlab.atomic import write_bytes_atomically, write_text_atomically
from cnnlab.report import _format as fmt
from cnnlab.report._figures import figure_to_png_bytes, new_figure
from cnnlab.report.blocks import Figure, Paragraph, Section, Table, figures_of, render_html, render_markdown
from cnnlab.siamese.assess import Assessment, assess_run, report_result
from cnnlab.runs import LoadedRun, load_run, read_config
from cnnlab.siamese.task import SiameseTask
from cnnlab.tasks import create_task, task_name

PAGE = "siamese"
FIGURES = "siamese_figures"

LOSS_FORMULAS = {
    "contrastive_half": "Y·½·d² + (1−Y)·max(margin − d², 0)  (the report's loss 1)",
    "contrastive": "Y·d² + (1−Y)·max(margin − d², 0)  (the report's loss 2)",
    "contrastive_hinge_squared": "Y·d² + (1−Y)·max(margin − d, 0)²  (the usual contrastive loss)",
    "triplet": "max(d(a,p) − d(a,n) + margin, 0), semi-hard negatives mined in the batch",
}


def _setup(run: LoadedRun, a: Assessment) -> Section:
    t = run.task
    sampler = ("anchor: one x1 image per group of rows against same- and different-class x2 "
               f"({t.anchors_per_batch} group(s) per batch; the report's default batches)" if t.sampler == "anchor"
               else "random pairs, every row its own x1 (the report's alternative batches)")
    embedding = (f"{a.embedding_dim} values from {t.embed_from}"
                 + (" through a Linear projection" if t.embedding_dim else " (no projection)")
                 + (", L2-normalized" if t.normalize else ", not normalized"))
    rows = [["run", run.run_dir.name], ["model", run.config.model.name], ["loss", LOSS_FORMULAS[t.loss]],
            ["margin", f"{t.margin:g}"], ["pairs", sampler], ["same-class fraction", f"{t.same_fraction:g}"],
            ["embedding", embedding],
            ["fit set", f"{a.fit_images:,} training images (a fixed subset)"],
            ["scored set", f"{a.scored_split} split, {a.scored_images:,} images"],
            ["time", fmt.duration(a.seconds)]]
    return Section("Setup", [Table(headers=["", "value"], rows=rows)])


def _accuracy(run: LoadedRun, a: Assessment) -> Section:
    acc = a.accuracies
    cut = int(a.scored_images * 0.8)
    rows = [["one-vs-rest linear SVM", f"fit on {a.fit_images:,} training embeddings, scored on the {a.scored_split} "
             "split", fmt.percent(acc["one_vs_rest_svm"])]]
    if "report_protocol" in acc:
        rows.append(["one-vs-rest linear SVM, the report's protocol",
                     f"fit on the first 80% of the {a.scored_split} embeddings ({cut:,}), scored on the rest "
                     f"({a.scored_images - cut:,})", fmt.percent(acc["report_protocol"])])
    rows += [[f"kNN, k = {a.knn_k}", "euclidean, fit on the training embeddings", fmt.percent(acc["knn"])],
             ["nearest class centroid", "the run's val_acc / test_acc", fmt.percent(acc["nearest_centroid"])]]
    blocks: list = [Table(headers=["classifier on the embeddings", "protocol", "accuracy"], rows=rows)]
    found = report_result(run.task.loss, run.task.sampler)
    if found:
        blocks.append(Paragraph(f"Report 002-c, {found[0]} (same loss and sampler): one-vs-rest classifier "
                                f"{fmt.percent(found[1], 1)}, after 50,000 steps."))
    else:
        blocks.append(Paragraph("Report 002-c did not run this loss with this sampler (its experiments: "
                                "loss 1 / loss 2 with anchor batches 47.6% / 47.3%, loss 2 with random pairs 68.2%)."))
    blocks += [Paragraph(n) for n in a.notes]
    return Section("Accuracy", blocks)


def _distance_figure(a: Assessment):
    from cnnlab.siamese.evaluate import distance_histograms

    edges, h_same, h_diff = distance_histograms(a.distances, a.same)
    fig = new_figure(10, 4)
    left, right = fig.subplots(1, 2)
    width = np.diff(edges)
    left.bar(edges[:-1], h_same, width=width, align="edge", alpha=0.6,
             label=f"same class ({a.verification.pairs_same:,})")
    left.bar(edges[:-1], h_diff, width=width, align="edge", alpha=0.6,
             label=f"different class ({a.verification.pairs_different:,})")
    left.set_xlabel("distance d between the embeddings of a pair")
    left.set_ylabel("density")
    left.legend()
    left.set_title("pair distances")
    right.plot(a.verification.fpr, a.verification.tpr, label=f"AUC {a.verification.auc:.3f}")
    right.plot([0, 1], [0, 1], ":", color="grey")
    right.set_xlabel("false positive rate (different pairs called same)")
    right.set_ylabel("true positive rate")
    right.legend(loc="lower right")
    right.set_title("verification ROC")
    return fig


def _verification(a: Assessment) -> Section:
    v = a.verification
    rows = [["ROC AUC (same class scored by −d)", f"{v.auc:.4f}"],
            ["mean d, same-class pairs", f"{v.mean_same:.4f}"],
            ["mean d, different-class pairs", f"{v.mean_different:.4f}"],
            ["pairs", f"{v.pairs_same:,} same + {v.pairs_different:,} different ({a.scored_split} split)"]]
    png = figure_to_png_bytes(_distance_figure(a))
    return Section("Verification on held-out pairs", [
        Table(headers=["", "value"], rows=rows),
        Figure("distances.png", png, "Distances of same- and different-class pairs, and the ROC of telling them "
                                     "apart by distance")])


def _per_class(a: Assessment, classes: list[str]) -> Section:
    rows = [[name, fmt.percent(None if np.isnan(acc) else float(acc))] for name, acc in zip(classes, a.per_class)]
    return Section("Per-class accuracy (one-vs-rest linear SVM)", [Table(headers=["class", "accuracy"], rows=rows)])


def _tsne(a: Assessment, classes: list[str]) -> Section:
    points, labels = a.tsne
    fig = new_figure(6.5, 5.5)
    ax = fig.subplots()
    cmap = colormaps["tab10" if len(classes) <= 10 else "tab20" if len(classes) <= 20 else "turbo"]
    for c, name in enumerate(classes):
        mask = labels == c
        if mask.any():
            color = cmap(c if len(classes) <= 20 else c / max(1, len(classes) - 1))
            ax.scatter(points[mask, 0], points[mask, 1], s=6, color=color, label=name, alpha=0.8, linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(classes) <= 20:
        ax.legend(markerscale=2.5, fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title(f"t-SNE of the embeddings ({len(labels):,} {a.scored_split} images, perplexity ≤ 40)")
    return Section("t-SNE of the embeddings", [Figure("tsne.png", figure_to_png_bytes(fig),
                                                      "The embeddings in 2-D (t-SNE), one colour per class")])


def build_sections(run: LoadedRun, a: Assessment) -> list[Section]:
    classes = list(run.splits.classes)
    sections = [_setup(run, a), _accuracy(run, a), _verification(a), _per_class(a, classes)]
    if a.tsne is not None:
        sections.append(_tsne(a, classes))
    return sections


def write_siamese_report(run: "str | Path | LoadedRun", data_dir: Optional[str] = None, *, splits=None,
                         fit_images: Optional[int] = None, knn_k: int = 10, tsne_points: int = 2000,
                         device: str = "auto", log: Optional[Callable[[str], None]] = None) -> Path:
    """Evaluate a finished siamese run's embeddings (``run``: its folder or its handle) and write ``<run>/siamese.html`` (returned),
    ``siamese.md``, ``siamese.json`` and ``siamese_figures/``.

    ``fit_images``: how many training images the classifiers are fitted on (default: the run's
    centroid images). ``splits``: the run's DataSplits when the caller has them (a training
    callback's logs["data"]), else they are loaded (``data_dir``). ``tsne_points`` 0 leaves the
    map out. ``device`` auto: the GPU when there is one.
    """
    if not isinstance(run, LoadedRun):
        cfg = read_config(Path(run))
        if not isinstance(create_task(cfg.task), SiameseTask):
            raise ValueError(f"{run} is not a siamese run (its task is {task_name(cfg.task)!r})")
        run = load_run(run, data_dir=data_dir, splits=splits, device=device)
    assessment = assess_run(run, fit_images=fit_images, knn_k=knn_k, tsne_points=tsne_points)
    sections = build_sections(run, assessment)
    title = f"Siamese evaluation: {run.run_dir.name}"
    out = run.run_dir
    figures = figures_of(sections)
    (out / FIGURES).mkdir(exist_ok=True)
    for name, png in figures.items():   # figures first: the pages never link a missing one
        write_bytes_atomically(out / FIGURES / name, png)
    write_text_atomically(out / f"{PAGE}.json", json.dumps(assessment.to_dict(), indent=2) + "\n")
    write_text_atomically(out / f"{PAGE}.md", render_markdown(title, sections, figures_dir=FIGURES))
    html_path = write_text_atomically(out / f"{PAGE}.html", render_html(title, sections))
    if log:
        log(f"siamese evaluation: {html_path} (one-vs-rest {fmt.percent(assessment.accuracies['one_vs_rest_svm'])})")
    return html_path


__all__ = ["build_sections", "write_siamese_report"]
