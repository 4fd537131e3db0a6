"""Siamese networks and metric learning on the one training loop (report 002-c).

The task `siamese` (listed in cnnlab.tasks with every other task):

    task: {name: siamese, loss: contrastive_half | contrastive | contrastive_hinge_squared | triplet,
           margin: 1.0, same_fraction: 0.5, sampler: random | anchor, embedding_dim: 64}

Modules: pairs (pair sampling), losses, twin (the shared-weight network), task (the loop's hook),
embed (embeddings, nearest centroid), evaluate (numpy/scikit-learn: one-vs-rest classifier, kNN,
verification ROC AUC, distance histograms, t-SNE). A finished run is read with cnnlab.runs.load_run.
"""
from cnnlab.siamese.losses import LOSSES, contrastive_loss, triplet_semihard_loss
from cnnlab.siamese.pairs import SAMPLERS, PairSampler, Pairs
from cnnlab.siamese.task import SiameseTask
from cnnlab.siamese.twin import SiameseNet

__all__ = ["LOSSES", "PairSampler", "Pairs", "SAMPLERS", "SiameseNet", "SiameseTask", "contrastive_loss",
           "triplet_semihard_loss"]
