"""cnnlab model zoo: registry, blocks, the reports' networks and standard families.

    from cnnlab.models import create_model, list_models, count_params, init_weights, summary
"""
from . import declared as _declared  # noqa: F401  (registers "sequential")
from . import nets as _nets  # noqa: F401  (registers every network)
from .base import ClassifierModel, SequentialClassifier
from .declared import DeclarationError, build_declared, layers_from_yaml
from .freeze import freeze, unfreeze
from .init import INIT_SCHEMES, init_weights
from .params import count_params
from .pretrained import (IMAGENET_URLS, ArchitectureMismatchError, LoadReport, PretrainedError, PretrainedFileError,
                         load_imagenet, load_pretrained)
from .registry import ModelArgumentError, ModelInfo, create_model, list_models, model_info, register_model
from .summary import ModelSummary, count_macs, summarize, summary
from .table import format_model_table

__all__ = [
    "ClassifierModel", "SequentialClassifier", "DeclarationError", "build_declared", "layers_from_yaml",
    "freeze", "unfreeze", "INIT_SCHEMES", "init_weights", "count_params", "IMAGENET_URLS", "LoadReport", "load_imagenet",
    "load_pretrained", "PretrainedError", "PretrainedFileError", "ArchitectureMismatchError", "ModelArgumentError",
    "ModelInfo", "create_model", "list_models", "model_info",
    "register_model", "ModelSummary", "count_macs", "summarize", "summary", "format_model_table",
]
