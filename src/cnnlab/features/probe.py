"""A probe: classifiers fitted on one split's features of some layers, scored on another split.

``run_probe(spec, load)`` is pure: ``load(layer, split)`` returns a FeatureSet (``cached_features``
for a real run), and the result holds every number, curve and t-SNE map; pages are the report
layer's job (``cnnlab.report.probe_page``).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Optional

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from cnnlab.features.cache import FeatureSet
from cnnlab.features.knn import knn_sweep
from cnnlab.features.linear import LABELS, fit_linear
from cnnlab.features.subsets import holdout_positions, stratified_positions
from cnnlab.features.tsne import MAX_POINTS, TsneMap, tsne_map

# The reports' probes, as defaults the command line may override. Layers left empty here must
# be given with --layer (they depend on the network).
PRESETS = {
    # 000-d: kNN, k = 1..40, on the 512 features before the last layer, train subsets 100 / 1,000 / 10,000.
    "000-d": dict(layers=["pre_logits"], ks=list(range(1, 41)), train_subsets=[100, 1000, 10000]),
    # 002-b: one-vs-rest linear SVM and t-SNE per layer; fit on 80% of the first 5,000 test images,
    # score on the other 20% (stratified, seeded).
    "002-b": dict(svm=True, tsne=True, fit_split="test", score_splits=["test"], first=5000, holdout=0.2),
    # 004-f: kNN on the network without its last layer, scored on train (~94%) and test (~84%).
    "004-f": dict(layers=["pre_logits"], ks=list(range(1, 41)), score_splits=["train", "test"]),
}


@dataclass
class ProbeSpec:
    layers: list[str] = field(default_factory=list)
    ks: list[int] = field(default_factory=list)   # kNN sweep; empty: no kNN
    svm: bool = False
    logreg: bool = False
    tsne: bool = False
    train_subsets: list[Optional[int]] = field(default_factory=lambda: [None])  # None: every fit image
    fit_split: str = "train"
    score_splits: list[str] = field(default_factory=lambda: ["test"])
    first: Optional[int] = None       # only the first N images of the fit split (002-b: 5,000 test images)
    holdout: Optional[float] = None   # fraction of those held out as the score set (002-b: 0.2)
    seed: int = 0
    tsne_points: int = MAX_POINTS
    name: Optional[str] = None
    preset: Optional[str] = None

    @property
    def methods(self) -> list[str]:
        return (["knn"] if self.ks else []) + (["svm"] if self.svm else []) + (["logreg"] if self.logreg else [])

    def folder_name(self) -> str:
        """The probe's folder under <run>/probes/: --name, else the preset, else the layers."""
        return self.name or self.preset or "+".join(self.layers)[:100]


def with_preset(spec: ProbeSpec, preset: Optional[str], explicit: set[str]) -> ProbeSpec:
    """``spec`` with the preset's values for every field not in ``explicit`` (the ones the user gave):
    options override the preset, and method flags (--svm, --tsne...) add to its methods."""
    if preset is None:
        return spec
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    values = {k: v for k, v in PRESETS[preset].items() if k not in explicit}
    return replace(spec, preset=preset, **values)


def check_spec(spec: ProbeSpec) -> None:
    """ValueError naming the option to fix when the spec cannot run."""
    if not spec.layers:
        raise ValueError("give at least one --layer (list them with: cnnlab layers RUN)")
    if not spec.methods and not spec.tsne:
        raise ValueError("choose what to fit: --knn 1..40, --svm, --logreg and/or --tsne (or a --preset)")
    if spec.holdout is not None and spec.score_splits != [spec.fit_split]:
        raise ValueError(f"--holdout scores on images held out of --fit-split {spec.fit_split}; "
                         f"drop --score-split {' '.join(spec.score_splits)}")
    name = spec.folder_name()
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"probe name {name!r} must be one folder name (no slashes); pass --name NAME")
    if spec.first is not None and spec.first < 1:
        raise ValueError(f"--first {spec.first}: give a positive number of images")
    if any(size is not None and size < 1 for size in spec.train_subsets):
        raise ValueError("--train-subset takes a positive number of images or 'all'")


@dataclass
class ProbeRow:
    layer: str
    dim: int            # D of the layer's features
    method: str         # knn, svm, logreg
    subset: str         # "100", "all"
    fit_size: int
    score_set: str      # "test", "test (20% held out)"
    score_size: int
    accuracy: float
    best_k: Optional[int] = None
    converged: bool = True
    seconds: float = 0.0
    fit_indices: str = ""      # keys of ProbeResult.indices: exactly which images were fitted on and scored
    score_indices: str = ""

    @property
    def method_label(self) -> str:
        return LABELS[self.method]


@dataclass
class KnnCurve:
    layer: str
    subset: str
    fit_size: int
    score_set: str
    ks: list[int]
    accuracies: list[float]


@dataclass
class LayerMap:
    layer: str
    score_set: str
    tsne: TsneMap


@dataclass
class ProbeResult:
    spec: ProbeSpec
    classes: list[str]
    rows: list[ProbeRow] = field(default_factory=list)
    curves: list[KnnCurve] = field(default_factory=list)
    maps: list[LayerMap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # {key: image indices in the order used}: the indices of the source split (features' `indices`,
    # the same numbers as the run's predictions/*.npz), one entry per distinct fit or score set.
    indices: dict[str, list[int]] = field(default_factory=dict)

    def index_key(self, role: str, name: str, indices: np.ndarray) -> str:
        """The key of ``indices`` in ``self.indices``: "<role> <name>", with a suffix when another
        set of the same name (another layer's cache) holds other images."""
        values = [int(i) for i in indices]
        key, n = f"{role} {name}", 1
        while key in self.indices and self.indices[key] != values:
            n += 1
            key = f"{role} {name} #{n}"
        self.indices[key] = values
        return key

    def learning_curves(self, layer: str, score_set: str) -> dict[str, dict[int, float]]:
        """{method label: {fit images: accuracy}} of one layer and score set (for the learning-curve figure)."""
        series: dict[str, dict[int, float]] = {}
        for row in self.rows:
            if row.layer == layer and row.score_set == score_set:
                series.setdefault(row.method_label, {})[row.fit_size] = row.accuracy
        return series

    def to_dict(self) -> dict:
        """The numbers as JSON-ready data (results.json); t-SNE points are left to the figures."""
        return {"spec": asdict(self.spec), "classes": self.classes, "rows": [asdict(r) for r in self.rows],
                "knn_curves": [asdict(c) for c in self.curves], "notes": self.notes, "seconds": self.seconds,
                "indices": self.indices}


Loader = Callable[[str, str], FeatureSet]


def _score_sets(spec: ProbeSpec, layer: str, load: Loader, notes: list[str]):
    """(fit x, y, indices) of the pool, [(name, x, y, indices)] to score on, and the (name, x, y) of
    the t-SNE map: the first scored set, or with a hold-out the whole pool (fit and held-out images
    together)."""
    fit_set = load(layer, spec.fit_split)
    x, y, idx = fit_set.features, fit_set.labels, fit_set.indices
    if spec.first is not None:
        if spec.first > len(y):
            _note(notes, f"the {spec.fit_split} split has {len(y):,} images, fewer than --first {spec.first:,}: "
                         "all of them are used")
        # "first" in the order of the source split (indices), as the report's x_test[:5000].
        order = np.argsort(fit_set.indices, kind="stable")[:spec.first]
        x, y, idx = x[order], y[order], idx[order]
    if spec.holdout is not None:
        fit_pos, score_pos = holdout_positions(y, spec.holdout, spec.seed)
        name = f"{spec.fit_split} ({100 * spec.holdout:g}% held out)"
        pool = spec.fit_split + (f" (first {len(y):,})" if spec.first is not None else "")
        return ((x[fit_pos], y[fit_pos], idx[fit_pos]), [(name, x[score_pos], y[score_pos], idx[score_pos])],
                (pool, x, y))
    scored = []
    for split in spec.score_splits:
        if split == spec.fit_split:
            _note(notes, f"scored on {split}, the fit split itself: every image is its own nearest neighbour")
            scored.append((split, x, y, idx))
        else:
            s = load(layer, split)
            scored.append((split, s.features, s.labels, s.indices))
    return (x, y, idx), scored, scored[0][:3]


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)


def run_probe(spec: ProbeSpec, load: Loader, classes: list[str], device: str = "cpu",
              log: Callable[[str], None] = lambda _msg: None) -> ProbeResult:
    """Fit and score every (layer, train subset, method) of ``spec``; t-SNE per layer when asked.

    scikit-learn's OpenMP and BLAS pools get torch's thread count: on a shared machine their
    spinning threads otherwise turn a 1 s t-SNE into a minute (measured on 2 busy cores).
    """
    check_spec(spec)
    with threadpool_limits(limits=torch.get_num_threads()):
        return _run_probe(spec, load, classes, device, log)


def _run_probe(spec: ProbeSpec, load: Loader, classes: list[str], device: str,
               log: Callable[[str], None]) -> ProbeResult:
    start = time.perf_counter()
    result = ProbeResult(spec, classes)
    for layer in spec.layers:
        (pool_x, pool_y, pool_idx), scored, mapped = _score_sets(spec, layer, load, result.notes)
        scored = [(name, x, y, result.index_key("scored", name, idx)) for name, x, y, idx in scored]
        done: set[str] = set()  # subsets at least as large as the pool all become one "all" row
        for size in spec.train_subsets:
            everything = size is None or size >= len(pool_y)
            if everything and size is not None:
                _note(result.notes, f"--train-subset {size:,} is not smaller than the {len(pool_y):,} fit "
                                    "images: all of them are used")
            label = "all" if everything else f"{size:,}"
            if label in done:
                continue
            done.add(label)
            positions = np.arange(len(pool_y)) if everything else \
                stratified_positions(pool_y, size, spec.seed, f"probe-subset-{size}", "--train-subset")
            fit_x, fit_y = pool_x[positions], pool_y[positions]
            fit_key = result.index_key("fit", f"{spec.fit_split} ({label})", pool_idx[positions])
            log(f"{layer}: fitting on {len(fit_y):,} images (D = {fit_x.shape[1]:,})")
            _fit_methods(spec, result, layer, label, fit_x, fit_y, fit_key, scored, device)
        if spec.tsne:
            name, x, y = mapped
            log(f"{layer}: t-SNE of {min(len(y), spec.tsne_points):,} {name} images")
            result.maps.append(LayerMap(layer, name, tsne_map(x, y, spec.tsne_points, spec.seed)))
    result.seconds = time.perf_counter() - start
    return result


def _fit_methods(spec: ProbeSpec, result: ProbeResult, layer: str, label: str, fit_x: np.ndarray, fit_y: np.ndarray,
                 fit_key: str, scored: list, device: str) -> None:
    dim = int(fit_x.shape[1])
    if spec.ks:
        ks = [k for k in spec.ks if k <= len(fit_y)]
        if len(ks) < len(spec.ks):
            _note(result.notes, f"k above {len(fit_y):,} (the fit images of subset {label}) was skipped")
        for name, x, y, key in scored:
            t0 = time.perf_counter()
            sweep = knn_sweep(fit_x, fit_y, x, y, ks, device=device)
            result.curves.append(KnnCurve(layer, label, len(fit_y), name, sweep.ks, sweep.accuracies))
            result.rows.append(ProbeRow(layer, dim, "knn", label, len(fit_y), name, len(y), sweep.best_accuracy,
                                        best_k=sweep.best_k, seconds=time.perf_counter() - t0,
                                        fit_indices=fit_key, score_indices=key))
    for method in ("svm", "logreg"):
        if not getattr(spec, method):
            continue
        fitted = fit_linear(method, fit_x, fit_y, spec.seed)
        if not fitted.converged:
            _note(result.notes, f"{LABELS[method]} on {layer} (subset {label}) stopped at its iteration limit "
                                "before converging")
        for name, x, y, key in scored:
            result.rows.append(ProbeRow(layer, dim, method, label, len(fit_y), name, len(y), fitted.accuracy(x, y),
                                        converged=fitted.converged, seconds=fitted.seconds,
                                        fit_indices=fit_key, score_indices=key))


__all__ = ["KnnCurve", "LayerMap", "PRESETS", "ProbeResult", "ProbeRow", "ProbeSpec", "check_spec", "run_probe",
           "with_preset"]
