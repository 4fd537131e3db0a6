"""Linear classifiers on features: one-vs-rest linear SVM (report 002-b) and logistic regression.

Both standardize the features first (mean 0, std 1 per feature, fitted on the fit set only):
flattened conv features span very different scales, and liblinear / lbfgs converge far faster
on standardized inputs. They are scikit-learn estimators; ``linear_classifier`` returns the exact
pipeline, so anyone can rebuild it.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

METHODS = ("svm", "logreg")
LABELS = {"knn": "kNN", "svm": "linear SVM (one-vs-rest)", "logreg": "logistic regression"}
MAX_ITER = {"svm": 5000, "logreg": 1000}  # solver iterations; a run that stops short is flagged


@dataclass
class FittedLinear:
    """A fitted pipeline, whether its solver converged, and how long fitting took."""

    model: object
    converged: bool   # False: the solver hit MAX_ITER (scikit-learn's ConvergenceWarning)
    seconds: float    # fit wall time

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        """Fraction of ``x`` predicted as ``y`` (NaN for no rows)."""
        return float((self.predict(x) == np.asarray(y)).mean()) if len(y) else float("nan")


def linear_classifier(method: str, seed: int = 0):
    """The scikit-learn pipeline of ``method`` (svm or logreg)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if method == "svm":
        # liblinear's LinearSVC trains one binary SVM per class against the rest (002-b's setup).
        return make_pipeline(StandardScaler(), LinearSVC(C=1.0, max_iter=MAX_ITER["svm"], random_state=seed))
    if method == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=MAX_ITER["logreg"]))
    raise ValueError(f"unknown classifier {method!r}; use one of {', '.join(METHODS)}")


def fit_linear(method: str, fit_x: np.ndarray, fit_y: np.ndarray, seed: int = 0) -> FittedLinear:
    """Fit ``method`` (svm or logreg) on (fit_x, fit_y)."""
    from sklearn.exceptions import ConvergenceWarning

    classes = len(np.unique(fit_y))
    if classes < 2:
        raise ValueError(f"{LABELS.get(method, method)} needs at least two classes among the fit images, got "
                         f"{classes}; use a larger --train-subset")
    start = time.perf_counter()
    model = linear_classifier(method, seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(fit_x, fit_y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return FittedLinear(model, converged, time.perf_counter() - start)


__all__ = ["FittedLinear", "LABELS", "METHODS", "fit_linear", "linear_classifier"]
