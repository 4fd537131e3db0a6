"""Public, composable building blocks of cnnlab models.

Every block takes its input channel count first and exposes ``out_chans``.
"""
from .activation import ACTIVATIONS, make_activation
from .conv import ConvBNAct, resolve_padding
from .dropout import Dropout
from .dense import DenseBlock, DenseLayer, Transition
from .inception import InceptionBlock
from .lrn import LocalResponseNorm
from .inverted_residual import ConvNormAct, InvertedResidual
from .residual import BasicBlock, ConcatResidual, PadShortcut
from .separable import SeparableConv2d
from .vgg import VGGStage, vgg_stage_layers
from .whiten import PatchWhitening

__all__ = [
    "ACTIVATIONS", "make_activation", "ConvBNAct", "Dropout", "resolve_padding", "DenseBlock", "DenseLayer",
    "Transition", "InceptionBlock", "LocalResponseNorm", "ConvNormAct", "InvertedResidual", "BasicBlock",
    "ConcatResidual", "PadShortcut", "SeparableConv2d", "VGGStage", "vgg_stage_layers", "PatchWhitening",
]
