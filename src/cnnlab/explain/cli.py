"""`cnnlab explain` (one image of a run explained on a page) and `cnnlab shapes` (conv arithmetic of a
model). ``register(subparsers)`` adds both commands to the main parser."""
from __future__ import annotations

import argparse


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: give a positive number")
    return value


def _cmd_explain(args: argparse.Namespace) -> int:
    from cnnlab.explain.ascent import AscentSettings
    from cnnlab.explain.page import ExplainOptions, explain_run
    from cnnlab.explain.source import from_file, from_split
    from cnnlab.runs import load_run

    if args.image is None and args.index is None:
        raise ValueError("say which image: --index IDX (the idx column of the report's tables, in --split) "
                         "or --image PATH")
    run = load_run(args.run, data_dir=args.data_dir)
    source = from_file(args.image, run.config) if args.image else from_split(run, args.split, args.index)
    options = ExplainOptions(layers=args.layer or None, cam_layer=args.cam_layer, filters=args.filters,
                             channels=args.channels, ig_steps=args.ig_steps,
                             ascent=AscentSettings(steps=args.steps, seed=args.seed))
    print(explain_run(run, source, options, out_dir=args.out))  # the page, last line, for scripts
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


def register(subparsers) -> None:
    """Add `explain` and `shapes` to the main parser's sub-commands."""
    e = subparsers.add_parser("explain", help="activations, filters and Grad-CAM heatmaps for one image of a run")
    e.add_argument("run", help="a run folder")
    which = e.add_mutually_exclusive_group()
    which.add_argument("--index", type=int, default=None, help="the image's idx (as in the report's tables)")
    which.add_argument("--image", default=None, help="an image file (resized like the run's data)")
    e.add_argument("--split", default="test", choices=["train", "val", "test"], help="split of --index (default test)")
    e.add_argument("--layer", action="append", default=[], metavar="NAME",
                   help="conv layer for activations and filters, by name or position (1 = first, -1 = last); "
                        "repeatable; default 1 and 4")
    e.add_argument("--cam-layer", default=None, metavar="NAME", help="Grad-CAM layer (default: the last conv layer)")
    e.add_argument("--filters", type=_positive, default=16, help="filters per layer by gradient ascent (default 16)")
    e.add_argument("--channels", type=_positive, default=64, help="activation channels shown per layer (default 64)")
    e.add_argument("--steps", type=_positive, default=64, help="gradient-ascent steps (default 64)")
    e.add_argument("--ig-steps", type=_positive, default=32, help="integrated-gradients steps (default 32)")
    e.add_argument("--seed", type=int, default=0, help="seed of the gradient ascent's noise and jitter")
    e.add_argument("--out", default=None, help="page folder (default <run>/explain/<split>-<idx> or image-<name>)")
    e.add_argument("--data-dir", default=None, help="where the run's dataset is (default: as for training)")
    e.set_defaults(func=_cmd_explain)

    s = subparsers.add_parser("shapes", help="output size, receptive field, jump and start of every conv/pool layer")
    s.add_argument("model", help="a registered model (cnnlab models)")
    s.add_argument("--input-size", type=_positive, default=None, help="image side in pixels (default: the model's)")
    s.add_argument("--in-chans", type=_positive, default=3, help="input channels (default 3)")
    s.set_defaults(func=_cmd_shapes)


__all__ = ["register"]
