"""kNN over a sweep of k, linear SVM and logistic regression against scikit-learn; subsets; t-SNE."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from cnnlab.features.knn import knn_sweep, parse_ks
from cnnlab.features.linear import fit_linear, linear_classifier
from cnnlab.features.subsets import holdout_positions, stratified_positions
from cnnlab.features.tsne import tsne_map


@pytest.fixture(autouse=True)
def one_sklearn_thread():
    """scikit-learn's OpenMP threads spin on a busy 2-core machine: one thread is much faster here."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _blobs(n: int, dim: int, classes: int, spread: float, seed: int, n_query: int = 0):
    """float32 points around one random centre per class (overlapping classes, so votes tie often):
    (x, y) of n points, or (x, y, query_x, query_y) with ``n_query`` more from the same classes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    y = rng.integers(0, classes, n + n_query)
    x = (centres[y] + spread * rng.normal(size=(n + n_query, dim))).astype(np.float32)
    return (x, y) if not n_query else (x[:n], y[:n], x[n:], y[n:])


@pytest.mark.parametrize("classes,label_values", [(3, None), (6, [40, 3, 17, 8, 25, 11])])
def test_knn_sweep_predicts_what_sklearn_predicts_for_every_k(classes, label_values):
    fit_x, fit_y, query_x, query_y = _blobs(700, 24, classes, 4.0, seed=classes, n_query=300)
    if label_values is not None:  # labels need not be 0..C-1; ties still go to the smallest label
        fit_y, query_y = np.array(label_values)[fit_y], np.array(label_values)[query_y]
    sweep = knn_sweep(fit_x, fit_y, query_x, query_y, range(1, 41), return_predictions=True)
    assert sweep.ks == list(range(1, 41)) and sweep.predictions.shape == (300, 40)
    for i, k in enumerate(sweep.ks):
        sk = KNeighborsClassifier(n_neighbors=k, algorithm="brute", metric="euclidean").fit(fit_x, fit_y)
        want = sk.predict(query_x)
        np.testing.assert_array_equal(sweep.predictions[:, i], want, err_msg=f"k={k}")
        assert sweep.accuracies[i] == (want == query_y).mean()
    # The data exercises the tie-breaking rule: many (query, k) have two classes with the most votes.
    nearest = fit_y[sk.kneighbors(query_x, n_neighbors=40, return_distance=False)]
    votes = np.stack([np.cumsum(nearest == c, axis=1) for c in np.unique(fit_y)], axis=2)  # query x k x class
    assert ((votes == votes.max(axis=2, keepdims=True)).sum(axis=2) > 1).sum() > 500
    best = int(np.argmax(sweep.accuracies))
    assert sweep.best_k == best + 1 and sweep.best_accuracy == max(sweep.accuracies)


def test_knn_blocks_and_exact_ties_of_distance():
    """Several query blocks (small block size) and duplicated fit points give the same answer as one block."""
    import cnnlab.features.knn as knn

    fit_x, fit_y, query_x, query_y = _blobs(200, 8, 4, 1.0, seed=1, n_query=90)
    fit_x = np.concatenate([fit_x, fit_x[:50]])  # exact duplicates: equal distances, other positions
    fit_y = np.concatenate([fit_y, (fit_y[:50] + 1) % 4])
    whole = knn_sweep(fit_x, fit_y, query_x, query_y, [1, 5, 12], return_predictions=True)
    old = knn.BLOCK_ELEMENTS, knn.RERANK_ELEMENTS
    knn.BLOCK_ELEMENTS, knn.RERANK_ELEMENTS = 250 * 7, 13 * 8 * 3   # 7 query rows, 3 re-rank rows per step
    try:
        blocked = knn_sweep(fit_x, fit_y, query_x, query_y, [1, 5, 12], return_predictions=True)
    finally:
        knn.BLOCK_ELEMENTS, knn.RERANK_ELEMENTS = old
    np.testing.assert_array_equal(whole.predictions, blocked.predictions)
    # A query equal to a duplicated fit point: its nearest neighbour is the lower fit index.
    assert knn_sweep(fit_x, fit_y, fit_x[:1], None, [1], return_predictions=True).predictions[0, 0] == fit_y[0]


def test_knn_bad_input_is_a_clear_error():
    x, y = _blobs(20, 4, 2, 1.0, seed=0)
    with pytest.raises(ValueError, match=r"k must lie in 1\.\.20"):
        knn_sweep(x, y, x, y, [1, 21])
    with pytest.raises(ValueError, match="same layer"):
        knn_sweep(x, y, x[:, :3], y, [1])
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        knn_sweep(bad, y, x, y, [1])


def test_parse_ks():
    assert parse_ks("1..40") == list(range(1, 41))
    assert parse_ks("12") == [12]
    assert parse_ks("1,5,10..12,5") == [1, 5, 10, 11, 12]
    for bad in ("0..3", "a", "5..2", ""):
        with pytest.raises(ValueError, match="--knn"):
            parse_ks(bad)


@pytest.mark.parametrize("method", ["svm", "logreg"])
def test_linear_classifiers_agree_with_sklearn(method):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    fit_x, fit_y, score_x, score_y = _blobs(400, 30, 5, 1.2, seed=3, n_query=200)
    fitted = fit_linear(method, fit_x, fit_y, seed=0)
    scaler = StandardScaler().fit(fit_x)
    ref = (LinearSVC(C=1.0, max_iter=5000, random_state=0) if method == "svm"
           else LogisticRegression(C=1.0, max_iter=1000)).fit(scaler.transform(fit_x), fit_y)
    want = ref.predict(scaler.transform(score_x))
    np.testing.assert_array_equal(fitted.predict(score_x), want)
    assert fitted.accuracy(score_x, score_y) == pytest.approx((want == score_y).mean())
    assert fitted.accuracy(score_x, score_y) > 0.8 and fitted.converged
    if method == "svm":  # one binary classifier per class against the rest
        assert fitted.model[-1].coef_.shape == (5, 30)
    with pytest.raises(ValueError, match="at least two classes"):
        fit_linear(method, fit_x[fit_y == 0], fit_y[fit_y == 0])
    with pytest.raises(ValueError, match="unknown classifier"):
        linear_classifier("forest")


def test_subsets_are_stratified_seeded_and_checked():
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])
    a = stratified_positions(labels, 20, seed=0, purpose="p", option="--train-subset")
    assert np.bincount(labels[a]).tolist() == [10, 6, 3, 1]
    np.testing.assert_array_equal(a, stratified_positions(labels, 20, seed=0, purpose="p", option="x"))
    assert not np.array_equal(a, stratified_positions(labels, 20, seed=1, purpose="p", option="x"))
    with pytest.raises(ValueError, match="--train-subset 500: choose between 1 and 100"):
        stratified_positions(labels, 500, seed=0, purpose="p", option="--train-subset")
    fit, score = holdout_positions(labels, 0.2, seed=0)
    assert len(score) == 20 and np.bincount(labels[score]).tolist() == [10, 6, 3, 1]
    assert sorted(np.concatenate([fit, score]).tolist()) == list(range(100))
    with pytest.raises(ValueError, match="--holdout 1.5"):
        holdout_positions(labels, 1.5, seed=0)


def test_tsne_map_samples_stratified_and_is_seeded():
    x, y = _blobs(120, 60, 3, 0.3, seed=5)
    a = tsne_map(x, y, max_points=60, seed=0)
    assert a.points.shape == (60, 2) and a.points.dtype == np.float32
    np.testing.assert_array_equal(a.labels, y[a.positions])
    assert np.bincount(a.labels).tolist() == np.bincount(y[stratified_positions(y, 60, 0, "probe-tsne", "x")]).tolist()
    np.testing.assert_array_equal(a.points, tsne_map(x, y, max_points=60, seed=0).points)
