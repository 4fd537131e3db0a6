"""The model registry: `cnnlab models`, `summary` and `shapes`."""
from __future__ import annotations

import argparse

from cnnlab.cli.common import add_command, positive


def _cmd_models(args: argparse.Namespace) -> int:
    from cnnlab.models import format_model_table

    print(format_model_table())
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from cnnlab.models import create_model, model_info, summary

    info = model_info(args.model)
    size = args.input_size or info.input_size   # e.g. 150 for cnn001a
    classes = args.num_classes or info.num_classes   # e.g. 1 sigmoid output for cnn001a, 200 for autokeras003b
    model = create_model(args.model, num_classes=classes, input_size=size)
    print(summary(model, input_size=size))
    return 0


def _cmd_shapes(args: argparse.Namespace) -> int:
    from cnnlab.models import create_model, model_info
    from cnnlab.models.receptive import format_geometry, trace_geometry

    info = model_info(args.model)
    size = args.input_size or info.input_size
    model = create_model(args.model, num_classes=info.num_classes, in_chans=args.in_chans, input_size=size)
    print(f"{args.model}: input {args.in_chans} x {size} x {size}")
    print(format_geometry(trace_geometry(model, size, in_chans=args.in_chans)))
    return 0


def register(sub) -> None:
    """Add `models`, `summary` and `shapes` to cnnlab's sub-commands."""
    m = add_command(sub, "models", "list registered models", ["cnnlab models"])
    m.set_defaults(func=_cmd_models)

    s = add_command(sub, "summary", "Keras-style summary of a model", [
        "cnnlab summary cnn004", "cnnlab summary resnet20 --num-classes 100"])
    s.add_argument("model", help="a registered model (cnnlab models)")
    s.add_argument("--input-size", type=positive, default=None, help="image side in pixels (default: the model's)")
    s.add_argument("--num-classes", type=positive, default=None,
                   help="default: the model's own (10 for CIFAR models)")
    s.set_defaults(func=_cmd_summary)

    sh = add_command(sub, "shapes", "output size, receptive field, jump and start of every conv/pool layer", [
        "cnnlab shapes cnn004", "cnnlab shapes vgg16 --input-size 64"])
    sh.add_argument("model", help="a registered model (cnnlab models)")
    sh.add_argument("--input-size", type=positive, default=None, help="image side in pixels (default: the model's)")
    sh.add_argument("--in-chans", type=positive, default=3, help="input channels (default 3)")
    sh.set_defaults(func=_cmd_shapes)
