"""Every number and map of a trained twin's evaluation page, computed once (the page only formats).

Fit set: by default the training images the run's class centroids are made of (the task's
`centroid_images`), so the page's nearest-centroid accuracy is the run's test_acc; else a fixed
random subset of `fit_images` training images. Scored set: the test split (the validation split
when there is none). Pairs for verification: the task's fixed scored
pairs of that split (the ones its test loss was computed on).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from cnnlab.siamese import evaluate as ev
from cnnlab.siamese.embed import class_centroids, embed, nearest_centroid

# Report 002-c's one-vs-rest accuracies by (loss, sampler): its experiments 1-3.
REPORT_RESULTS = {("contrastive_half", "anchor"): ("experiment 1", 0.476),
                  ("contrastive", "anchor"): ("experiment 2", 0.473),
                  ("contrastive", "random"): ("experiment 3", 0.682)}
FIT_SEED = 2004   # the fit subset when fit_images is given


def report_result(loss: str, sampler: str) -> Optional[tuple[str, float]]:
    """(the report's experiment, its one-vs-rest accuracy) for this loss and sampler, if it ran them."""
    return REPORT_RESULTS.get((loss, sampler))


@dataclass
class Assessment:
    scored_split: str
    fit_images: int
    scored_images: int
    embedding_dim: int
    accuracies: dict            # method -> accuracy (fraction)
    per_class: np.ndarray       # one-vs-rest accuracy per class
    knn_k: int
    verification: ev.Verification
    distances: np.ndarray       # of the scored pairs
    same: np.ndarray
    tsne: Optional[tuple[np.ndarray, np.ndarray]]
    seconds: float
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """The numbers (no arrays), for siamese.json."""
        v = self.verification
        return {"scored_split": self.scored_split, "fit_images": self.fit_images, "scored_images": self.scored_images,
                "embedding_dim": self.embedding_dim, "accuracies": self.accuracies, "knn_k": self.knn_k,
                "per_class_accuracy": [None if np.isnan(a) else float(a) for a in self.per_class],
                "verification": {"roc_auc": v.auc, "mean_distance_same": v.mean_same,
                                 "mean_distance_different": v.mean_different, "pairs_same": v.pairs_same,
                                 "pairs_different": v.pairs_different},
                "seconds": round(self.seconds, 2), "notes": list(self.notes)}


def assess_run(run, fit_images: Optional[int] = None, knn_k: int = 10, tsne_points: int = 2000,
               seed: int = 0) -> Assessment:
    """Embeddings of the fit and scored images, then every classifier and map of the page. `run` is
    a finished siamese run's handle (cnnlab.runs.load_run: model, task, normalizer, splits, device)."""
    t0 = time.perf_counter()
    scored_name = "test" if run.splits.test is not None and len(run.splits.test) else "val"
    scored = getattr(run.splits, scored_name)
    if scored is None or len(scored) == 0:
        raise ValueError(f"{run.run_dir} has neither a test nor a validation split to score")
    train = run.splits.train
    fit_rows = torch.arange(len(train))
    if fit_images is None:
        fit_rows = run.task.centroid_positions(len(train))
    elif 0 < fit_images < len(train):
        perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(FIT_SEED))
        fit_rows = perm[:fit_images].sort().values
    batch = run.config.eval_batch_size

    def embed_of(images: torch.Tensor) -> np.ndarray:
        return embed(run.model, images.to(run.device), run.normalizer, batch).numpy()

    fit_x, fit_y = embed_of(train.images[fit_rows]), train.labels[fit_rows].numpy()
    x, y = embed_of(scored.images), scored.labels.numpy()
    num_classes = len(run.splits.classes)
    centroids = class_centroids(torch.from_numpy(fit_x), torch.from_numpy(fit_y), num_classes)
    centroid_acc = float((nearest_centroid(torch.from_numpy(x), centroids).numpy() == y).mean())
    ovr = ev.one_vs_rest_svm(fit_x, fit_y, x, y, seed=seed)
    accuracies = {"one_vs_rest_svm": ovr.accuracy, "knn": ev.knn_accuracy(fit_x, fit_y, x, y, knn_k).accuracy,
                  "nearest_centroid": centroid_acc}
    notes = []
    try:
        accuracies["report_protocol"] = ev.report_protocol(x, y, seed=seed).accuracy
    except ValueError as err:   # a tiny split: said on the page instead
        notes.append(f"report protocol not computed: {err}")
    pairs = run.task.eval_pairs_of(scored.labels)
    if pairs is None:
        raise ValueError(f"the {scored_name} split has a single class: no different-class pairs to verify")
    d = ev.pair_distances(x, pairs.x1.numpy(), pairs.x2.numpy())
    same = pairs.same.numpy()
    tsne = ev.tsne_points(x, y, tsne_points, seed) if tsne_points else None
    return Assessment(scored_name, len(fit_rows), len(y), int(x.shape[1]), accuracies,
                      ev.per_class_accuracy(y, ovr.predictions, num_classes), knn_k, ev.verification(d, same), d, same,
                      tsne, time.perf_counter() - t0, notes)


__all__ = ["Assessment", "REPORT_RESULTS", "assess_run", "report_result"]
