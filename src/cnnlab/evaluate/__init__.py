"""Evaluation of saved predictions: metrics, confusion, the four example groups (TTA is computed by the trainer)."""
from __future__ import annotations

from cnnlab.evaluate._inputs import PredictionFormatError
from cnnlab.evaluate.examples import EXAMPLE_GROUPS, example_groups
from cnnlab.evaluate.metrics import classification_metrics, format_confused_pair, most_confused_pairs

__all__ = ["EXAMPLE_GROUPS", "PredictionFormatError", "classification_metrics", "example_groups",
           "format_confused_pair", "most_confused_pairs"]
