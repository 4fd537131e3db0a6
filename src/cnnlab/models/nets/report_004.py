"""Networks of report 004 (Keras, CIFAR-10 workflow)."""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..base import SequentialClassifier
from ..blocks.dropout import Dropout
from ..blocks.keras import keras_bn, keras_conv
from ..registry import register_model
from ..shapes import flat_features


@register_model(input_size=32, description="004-a CNN: 4 conv (valid) + BN, 2 max-pools, dense 10; 82,346 params (Keras)")
def cnn004(num_classes: int = 10, in_chans: int = 3, dropout: float = 0.25, input_size: int = 32) -> SequentialClassifier:
    """Report 004-a CNN, layer for layer as its Keras listing.

    conv32 3x3 valid (ReLU), BN, conv32, BN, maxpool 2, dropout, conv64, BN,
    conv64, BN, maxpool 2, dropout, flatten, dense ``num_classes``. Keras order:
    ``Conv2D(activation="relu")`` then ``BatchNormalization``. At 32x32 input and
    10 classes: 82,346 params in Keras counting (81,962 trainable + 384 BN moving stats).
    """
    features = nn.Sequential(OrderedDict([
        ("conv1", keras_conv(in_chans, 32)), ("relu1", nn.ReLU()), ("bn1", keras_bn(32)),
        ("conv2", keras_conv(32, 32)), ("relu2", nn.ReLU()), ("bn2", keras_bn(32)),
        ("pool1", nn.MaxPool2d(2)), ("drop1", Dropout(dropout)),
        ("conv3", keras_conv(32, 64)), ("relu3", nn.ReLU()), ("bn3", keras_bn(64)),
        ("conv4", keras_conv(64, 64)), ("relu4", nn.ReLU()), ("bn4", keras_bn(64)),
        ("pool2", nn.MaxPool2d(2)), ("drop2", Dropout(dropout)),
        ("flatten", nn.Flatten()),
    ]))
    dim = flat_features(features, in_chans, input_size)
    return SequentialClassifier(features, nn.Identity(), nn.Linear(dim, num_classes), num_classes)
