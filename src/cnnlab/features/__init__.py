"""Features from any layer of a trained run, and the classifiers probed on them (kNN, linear SVM,
logistic regression, t-SNE maps): reports 000-d, 002-b and 004-f.

    from cnnlab.features import cached_features, knn_sweep, model_layers, run_probe
"""
from cnnlab.features.cache import FeatureSet, cached_features, features_path
from cnnlab.features.extract import extract_features
from cnnlab.features.knn import KnnSweep, knn_sweep, parse_ks
from cnnlab.features.layers import LayerInfo, UnknownLayerError, find_layer, format_layers, model_layers
from cnnlab.features.linear import fit_linear, linear_classifier
from cnnlab.features.probe import PRESETS, ProbeResult, ProbeSpec, run_probe, with_preset
from cnnlab.features.tsne import tsne_map

__all__ = ["FeatureSet", "KnnSweep", "LayerInfo", "PRESETS", "ProbeResult", "ProbeSpec", "UnknownLayerError",
           "cached_features", "extract_features", "features_path", "find_layer", "fit_linear", "format_layers",
           "knn_sweep", "linear_classifier", "model_layers", "parse_ks", "run_probe", "tsne_map",
           "with_preset"]
