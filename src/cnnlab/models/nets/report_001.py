"""Networks of report 001 (Keras): cats-vs-dogs binary CNN, CIFAR-10 models 1/2, inception, residual.

Report 001 prints no parameter tables, so details it leaves open follow the Keras
examples its text mirrors (stated per model); counts are pinned by tests on our reading.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..base import SequentialClassifier
from ..blocks.dropout import Dropout
from ..blocks.inception import InceptionBlock
from ..blocks.keras import keras_bn, keras_conv
from ..blocks.residual import ConcatResidual
from ..registry import register_model
from ..shapes import flat_features


@register_model(input_size=150, num_classes=1, description="001-a cats-vs-dogs CNN (conv 32/64/128/128 + BN, dense 512-64-1)")
def cnn001a(num_classes: int = 1, in_chans: int = 3, input_size: int = 150) -> SequentialClassifier:
    """Report 001-a binary CNN (its "model 2"; model 4, the retrained best, is not described).

    conv32 3x3 + BN, then conv64, conv128, conv128, each conv (ReLU, valid) followed by
    2x2 max pooling; flatten; dense 512, dense 64 (ReLU); one output logit (the report's
    sigmoid unit: train with BCE-with-logits). Input 150x150, as in the Keras
    cats-vs-dogs example the report follows; 3,485,633 params at 150x150 (64 of them BN moving stats).
    """
    features = nn.Sequential(OrderedDict([
        ("conv1", keras_conv(in_chans, 32)), ("relu1", nn.ReLU()), ("bn1", keras_bn(32)), ("pool1", nn.MaxPool2d(2)),
        ("conv2", keras_conv(32, 64)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ("conv3", keras_conv(64, 128)), ("relu3", nn.ReLU()), ("pool3", nn.MaxPool2d(2)),
        ("conv4", keras_conv(128, 128)), ("relu4", nn.ReLU()), ("pool4", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()),
    ]))
    dim = flat_features(features, in_chans, input_size)
    pre_head = nn.Sequential(OrderedDict([
        ("fc1", nn.Linear(dim, 512)), ("relu1", nn.ReLU()), ("fc2", nn.Linear(512, 64)), ("relu2", nn.ReLU()),
    ]))
    return SequentialClassifier(features, pre_head, nn.Linear(64, num_classes), num_classes)


def _cifar_trunk(in_chans: int) -> list[tuple[str, nn.Module]]:
    # Keras cifar10_cnn example: first conv of each pair "same", second "valid".
    return [
        ("conv1", keras_conv(in_chans, 32, padding="same")), ("relu1", nn.ReLU()),
        ("conv2", keras_conv(32, 32)), ("relu2", nn.ReLU()), ("pool1", nn.MaxPool2d(2)), ("drop1", Dropout(0.25)),
        ("conv3", keras_conv(32, 64, padding="same")), ("relu3", nn.ReLU()),
        ("conv4", keras_conv(64, 64)), ("relu4", nn.ReLU()), ("pool2", nn.MaxPool2d(2)), ("drop2", Dropout(0.25)),
    ]


def _cifar_model(in_chans: int, num_classes: int, input_size: int, extra: list[tuple[str, nn.Module]],
                 head_dropout: float) -> SequentialClassifier:
    features = nn.Sequential(OrderedDict(_cifar_trunk(in_chans) + extra + [("flatten", nn.Flatten())]))
    dim = flat_features(features, in_chans, input_size)
    pre = [("fc1", nn.Linear(dim, 512)), ("relu", nn.ReLU())]
    if head_dropout > 0:
        pre.append(("drop", Dropout(head_dropout)))
    return SequentialClassifier(features, nn.Sequential(OrderedDict(pre)), nn.Linear(512, num_classes), num_classes)


@register_model(input_size=32, description="001-d CIFAR-10 model 1: 2x conv32, pool, 2x conv64, pool, dense 512")
def cnn001d1(num_classes: int = 10, in_chans: int = 3, input_size: int = 32) -> SequentialClassifier:
    """Report 001-d model 1 (the Keras cifar10_cnn layout: first conv of each pair
    "same", second "valid"; dropout 0.25 after each pool); 1,250,858 params."""
    return _cifar_model(in_chans, num_classes, input_size, [], head_dropout=0.0)


@register_model(input_size=32, description="001-d CIFAR-10 model 2: model 1 + dropout 0.25 before the output")
def cnn001d2(num_classes: int = 10, in_chans: int = 3, input_size: int = 32, dropout: float = 0.25) -> SequentialClassifier:
    """Report 001-d model 2: model 1 with dropout (0.25) between dense 512 and the output; 1,250,858 params."""
    return _cifar_model(in_chans, num_classes, input_size, [], head_dropout=dropout)


@register_model(input_size=32, description="001-e model 2 + inception block (3 branches of conv64, concatenated)")
def cnn001e_inception(num_classes: int = 10, in_chans: int = 3, input_size: int = 32) -> SequentialClassifier:
    """Report 001-e: model 2 with an inception block (3x3 conv64 / 3x3 conv64 -> 3x3 conv64 /
    3x3 conv64 -> 3x3 max pool stride 1, all "same", concatenated to 192 channels) between
    the second conv block and the dense block; 3,757,866 params."""
    return _cifar_model(in_chans, num_classes, input_size, [("inception", InceptionBlock(64, 64))], head_dropout=0.25)


@register_model(input_size=32, description="001-e model 2 + residual block (2x conv128, 1x1 conv64, concat input, pool)")
def cnn001e_residual(num_classes: int = 10, in_chans: int = 3, input_size: int = 32) -> SequentialClassifier:
    """Report 001-e: model 2 with a residual block (two 3x3 conv128, a 1x1 conv64, output
    concatenated with the input to 128 channels, 2x2 max pool) after the second conv block;
    the 1x1 conv keeps ReLU, as "the layers use relu"; 890,730 params."""
    return _cifar_model(in_chans, num_classes, input_size, [("residual", ConcatResidual(64, 128, 64))], head_dropout=0.25)
