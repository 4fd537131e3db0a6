"""Registered networks; importing this package registers every model."""
from . import (  # noqa: F401  (imported for their registration side effects)
    airbench,
    alexnet,
    densenet,
    mobilenetv2,
    report_000,
    report_001,
    report_002,
    report_003,
    report_004,
    resnet,
    resnet_cifar,
    vgg,
)
