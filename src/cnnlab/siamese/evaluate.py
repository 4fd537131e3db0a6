"""What a trained twin's embeddings are worth (numpy and scikit-learn only; no torch).

    one_vs_rest_svm    the report's metric: a one-vs-rest linear SVM on the embeddings
    report_protocol    the report's own split of it: fit on the first 80% of a set, score the rest
    knn_accuracy       k nearest neighbours (euclidean) of the fit embeddings
    verification       ROC AUC of "same class" scored by −distance on held-out pairs
    distance_histograms  same- vs different-class pair distances
    tsne_points        a 2-D t-SNE map (perplexity 40, as the report's)

Embeddings are float arrays N x D, labels int arrays N, distances in embedding units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REPORT_FIT_FRACTION = 0.8     # the report fits on 80% of the features and scores the other 20%
REPORT_PERPLEXITY = 40.0      # the report's TSNE(perplexity=40)


def _check(x: np.ndarray, y: np.ndarray, what: str) -> None:
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"{what}: expected embeddings N x D and labels N, got {x.shape} and {y.shape}")
    if len(y) == 0:
        raise ValueError(f"{what}: no embeddings")


@dataclass
class Classified:
    accuracy: float
    predictions: np.ndarray     # predicted class per scored row


def one_vs_rest_svm(fit_x: np.ndarray, fit_y: np.ndarray, score_x: np.ndarray, score_y: np.ndarray,
                    c: float = 1.0, seed: int = 0) -> Classified:
    """One linear SVM per class against the rest (the report's OneVsRestClassifier(SVC(kernel='linear'))
    with scikit-learn's LinearSVC, the same model fitted faster), on the raw embeddings."""
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.svm import LinearSVC

    _check(fit_x, fit_y, "one-vs-rest fit set")
    _check(score_x, score_y, "one-vs-rest scored set")
    if len(np.unique(fit_y)) < 2:
        raise ValueError("a one-vs-rest classifier needs at least 2 classes among the fit embeddings")
    clf = OneVsRestClassifier(LinearSVC(C=c, random_state=seed, max_iter=5000))
    clf.fit(fit_x, fit_y)
    pred = clf.predict(score_x)
    return Classified(float((pred == score_y).mean()), pred)


def report_protocol(x: np.ndarray, y: np.ndarray, fraction: float = REPORT_FIT_FRACTION, seed: int = 0) -> Classified:
    """The report's protocol: one-vs-rest linear SVM fitted on the first ``fraction`` of the rows
    (in their order), scored on the rest."""
    _check(x, y, "report protocol")
    cut = int(len(y) * fraction)
    if cut < 2 or cut >= len(y):
        raise ValueError(f"{len(y)} embeddings are too few to fit on {fraction:.0%} and score the rest")
    return one_vs_rest_svm(x[:cut], y[:cut], x[cut:], y[cut:], seed=seed)


def knn_accuracy(fit_x: np.ndarray, fit_y: np.ndarray, score_x: np.ndarray, score_y: np.ndarray,
                 k: int = 10) -> Classified:
    """Majority vote of the k nearest fit embeddings (euclidean; k capped at the fit set's size)."""
    from sklearn.neighbors import KNeighborsClassifier

    _check(fit_x, fit_y, "kNN fit set")
    _check(score_x, score_y, "kNN scored set")
    if k < 1:
        raise ValueError(f"kNN needs k >= 1, got {k}")
    clf = KNeighborsClassifier(n_neighbors=min(k, len(fit_y))).fit(fit_x, fit_y)
    pred = clf.predict(score_x)
    return Classified(float((pred == score_y).mean()), pred)


def per_class_accuracy(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Accuracy of each class (NaN for a class without scored rows)."""
    out = np.full(num_classes, np.nan)
    for k in range(num_classes):
        rows = labels == k
        if rows.any():
            out[k] = float((predictions[rows] == k).mean())
    return out


def pair_distances(emb: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Euclidean distance of each pair (emb[i], emb[j])."""
    diff = emb[np.asarray(i)].astype(np.float64) - emb[np.asarray(j)].astype(np.float64)
    return np.sqrt((diff ** 2).sum(axis=1))


@dataclass
class Verification:
    auc: float                  # ROC AUC of "same class" scored by −d (1 = every same pair closer than every other)
    fpr: np.ndarray
    tpr: np.ndarray
    mean_same: float            # mean distance of same-class pairs
    mean_different: float
    pairs_same: int
    pairs_different: int


def verification(distances: np.ndarray, same: np.ndarray) -> Verification:
    """How well distance alone tells same-class pairs from different-class ones."""
    from sklearn.metrics import roc_auc_score, roc_curve

    same = np.asarray(same, dtype=bool)
    if same.all() or not same.any():
        raise ValueError("verification needs same-class and different-class pairs")
    fpr, tpr, _ = roc_curve(same, -distances)
    return Verification(float(roc_auc_score(same, -distances)), fpr, tpr, float(distances[same].mean()),
                        float(distances[~same].mean()), int(same.sum()), int((~same).sum()))


def distance_histograms(distances: np.ndarray, same: np.ndarray, bins: int = 40) -> tuple[np.ndarray, np.ndarray,
                                                                                         np.ndarray]:
    """(bin edges, density of same-class pair distances, density of different-class ones) on shared bins."""
    same = np.asarray(same, dtype=bool)
    edges = np.histogram_bin_edges(distances, bins=bins)
    h_same = np.histogram(distances[same], bins=edges, density=True)[0] if same.any() else np.zeros(bins)
    h_diff = np.histogram(distances[~same], bins=edges, density=True)[0] if (~same).any() else np.zeros(bins)
    return edges, h_same, h_diff


def tsne_points(emb: np.ndarray, labels: np.ndarray, max_points: int = 2000, seed: int = 0) -> tuple[np.ndarray,
                                                                                                  np.ndarray]:
    """(points M x 2, their labels): t-SNE of at most ``max_points`` rows (a seeded random sample),
    perplexity 40 as the report's (less when there are few points: it must stay below M)."""
    from sklearn.manifold import TSNE

    _check(emb, labels, "t-SNE")
    if len(labels) < 4 or max_points < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {min(len(labels), max_points)}")
    rows = np.arange(len(labels))
    if len(rows) > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_points, replace=False))
    perplexity = min(REPORT_PERPLEXITY, (len(rows) - 1) / 3)
    points = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                  random_state=seed).fit_transform(np.asarray(emb[rows], dtype=np.float32))
    return points.astype(np.float32), np.asarray(labels)[rows]


__all__ = ["Classified", "Verification", "distance_histograms", "knn_accuracy", "one_vs_rest_svm", "pair_distances",
           "per_class_accuracy", "report_protocol", "tsne_points", "verification"]
