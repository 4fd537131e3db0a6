"""The one interface every cnnlab model implements."""
from __future__ import annotations

import torch
from torch import nn


class ClassifierModel(nn.Module):
    """Base class of every registered model.

    Subclasses set ``self.num_classes`` and implement :meth:`forward_features`
    (everything up to the pooled/flattened feature vector) and
    :meth:`forward_head`. ``forward`` returns raw logits: no softmax, and a
    binary model built with ``num_classes=1`` returns one logit per image
    (train it with ``BCEWithLogitsLoss``).
    """

    num_classes: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the features fed to the head, shape (N, D)."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward_features")

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Map features to logits (N, num_classes); with ``pre_logits`` stop before the last layer."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward_head")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class SequentialClassifier(ClassifierModel):
    """A model made of ``features`` (image -> flat vector), ``pre_head`` and a final ``classifier``.

    ``pre_head`` holds the head layers before the last one (hidden dense layers,
    dropout...), so ``forward_head(f, pre_logits=True)`` returns the penultimate
    representation used for kNN / t-SNE feature extraction.
    """

    def __init__(self, features: nn.Module, pre_head: nn.Module, classifier: nn.Module, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.features = features
        self.pre_head = pre_head
        self.classifier = classifier

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_head(features)
        return x if pre_logits else self.classifier(x)
