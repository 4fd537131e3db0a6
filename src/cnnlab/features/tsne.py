"""2-D t-SNE maps of features (report 002-b), on a stratified, seeded sample of at most a few thousand points.

t-SNE is quadratic-ish in the number of points (about a minute for 5,000 points on 2 cores), so a
map uses at most ``max_points`` of them. Features above 50 dimensions are first reduced to 50 by
PCA (the usual t-SNE preprocessing: it removes noise dimensions and makes each step cheaper).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnlab.features.subsets import stratified_positions

MAX_POINTS = 2000
PCA_DIMS = 50


@dataclass
class TsneMap:
    points: np.ndarray     # float32 n x 2
    labels: np.ndarray     # n
    positions: np.ndarray  # rows of the input features the points are


def tsne_map(features: np.ndarray, labels: np.ndarray, max_points: int = MAX_POINTS, seed: int = 0) -> TsneMap:
    """t-SNE of at most ``max_points`` rows (stratified sample when there are more), seeded."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n = len(labels)
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 images, got {n}")
    if max_points < 4:
        raise ValueError(f"--tsne-points {max_points}: use at least 4")
    positions = np.arange(n) if n <= max_points else \
        stratified_positions(labels, max_points, seed, "probe-tsne", "--tsne-points")
    x = np.asarray(features[positions], dtype=np.float32)
    if x.shape[1] > PCA_DIMS and len(x) > PCA_DIMS:
        x = PCA(n_components=PCA_DIMS, random_state=seed).fit_transform(x)
    # perplexity must stay below the number of points; 30 is scikit-learn's default.
    perplexity = min(30.0, (len(x) - 1) / 3)
    points = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                  random_state=seed).fit_transform(x)
    return TsneMap(points.astype(np.float32), np.asarray(labels)[positions], positions)


__all__ = ["MAX_POINTS", "TsneMap", "tsne_map"]
