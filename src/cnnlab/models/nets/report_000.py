"""Networks of report 000 (Keras, parameter budget under 50K, VGG16 on CIFAR-100)."""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..base import SequentialClassifier
from ..blocks.dropout import Dropout
from ..blocks.keras import keras_bn, keras_conv
from ..registry import register_model
from ..shapes import flat_features
from .densenet import DenseNet


@register_model(input_size=32, description="000-a 13-layer plain CNN; 49,268 params (Keras)")
def cnn000a(num_classes: int = 10, in_chans: int = 3, dropout: float = 0.25, dense_dropout: float = 0.5,
            input_size: int = 32) -> SequentialClassifier:
    """Report 000-a plain CNN, as its Keras table (all ReLU).

    conv30 3x3 same, conv30 valid, maxpool, dropout, conv48 valid, maxpool, conv48
    valid, maxpool, dropout, flatten (192), dense 32, dropout, dense 10: 49,268 params.
    The report prints no padding or dropout rates: "same" on the first conv is the
    only reading giving its 32x32 -> 30x30 shapes; dropout rates 0.25/0.25/0.5 are ours.
    """
    features = nn.Sequential(OrderedDict([
        ("conv1", keras_conv(in_chans, 30, padding="same")), ("relu1", nn.ReLU()),
        ("conv2", keras_conv(30, 30)), ("relu2", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)), ("drop1", Dropout(dropout)),
        ("conv3", keras_conv(30, 48)), ("relu3", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ("conv4", keras_conv(48, 48)), ("relu4", nn.ReLU()), ("pool3", nn.MaxPool2d(2)),
        ("drop2", Dropout(dropout)), ("flatten", nn.Flatten()),
    ]))
    dim = flat_features(features, in_chans, input_size)
    pre_head = nn.Sequential(OrderedDict([
        ("fc1", nn.Linear(dim, 32)), ("relu", nn.ReLU()), ("drop", Dropout(dense_dropout)),
    ]))
    return SequentialClassifier(features, pre_head, nn.Linear(32, num_classes), num_classes)


@register_model(input_size=32, description="000-b DenseNet-BC under 50K params; 45,634 total / 44,410 trainable")
def densenet000b(num_classes: int = 10, in_chans: int = 3) -> DenseNet:
    """Report 000-b DenseNet: DenseNet-BC, growth 12, bottleneck 48, three dense
    blocks of 2 layers, compression 0.5, 3x3 conv24 stem without bias, Keras BN
    (eps 1e-3). 45,634 params in Keras counting: 44,410 trainable + 1,224 BN moving stats.
    """
    return DenseNet(growth=12, block_config=(2, 2, 2), stem_chans=24, compression=0.5,
                    num_classes=num_classes, in_chans=in_chans, keras_bn=True)


def _vgg_cifar100_features(in_chans: int) -> nn.Sequential:
    # Keras "cifar100vgg" layout: conv (same) -> ReLU -> BN, dropout 0.3 after the
    # first conv of the net, 0.4 between convs of one stage, max pool after each stage.
    layers: list[tuple[str, nn.Module]] = []
    chans = in_chans
    for stage, (width, n) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), start=1):
        for i in range(1, n + 1):
            tag = f"block{stage}_conv{i}"
            layers += [(tag, keras_conv(chans, width, padding="same")), (f"{tag}_relu", nn.ReLU()),
                       (f"{tag}_bn", keras_bn(width))]
            if i < n:
                layers.append((f"{tag}_drop", Dropout(0.3 if stage == 1 else 0.4)))
            chans = width
        layers.append((f"block{stage}_pool", nn.MaxPool2d(2)))
    layers += [("drop", Dropout(0.5)), ("flatten", nn.Flatten())]
    return nn.Sequential(OrderedDict(layers))


@register_model(input_size=32, description="000-c VGG16+BN for CIFAR (dense 512 + BN); 15,001,418 params at 10 classes")
def vgg16_cifar000c(num_classes: int = 10, in_chans: int = 3) -> SequentialClassifier:
    """Report 000-c VGG-16 pretrained on CIFAR-100, with a new 10-class layer.

    The report prints 15,001,418 params of which 5,130 train (the new dense 10).
    That count is given exactly by the widely used Keras "cifar100vgg" network:
    13 3x3 convs (ReLU then BN), dense 512 + ReLU + BN + dropout 0.5, dense classes;
    we use that reading. Freeze everything but ``classifier`` to reproduce 000-c;
    ``forward_head(f, pre_logits=True)`` gives the 512 kNN features of 000-d.
    """
    features = _vgg_cifar100_features(in_chans)
    pre_head = nn.Sequential(OrderedDict([
        ("fc1", nn.Linear(512, 512)), ("relu", nn.ReLU()), ("bn", keras_bn(512, dims=1)), ("drop", Dropout(0.5)),
    ]))
    return SequentialClassifier(features, pre_head, nn.Linear(512, num_classes), num_classes)
