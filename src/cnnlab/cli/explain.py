"""`cnnlab explain`: one image of a run explained on a page (activations, filters, Grad-CAM, attributions)."""
from __future__ import annotations

import argparse

from cnnlab.cli.common import add_command, add_data_dir_flag, add_device_flag, add_out_flag, add_run_arg, device_of
from cnnlab.cli.common import positive as _positive


def _cmd_explain(args: argparse.Namespace) -> int:
    from cnnlab.explain.ascent import AscentSettings
    from cnnlab.explain.page import ExplainOptions, explain_run
    from cnnlab.explain.source import from_file, from_split
    from cnnlab.runs import load_run

    if args.image is None and args.index is None:
        raise ValueError("say which image: --index IDX (the idx column of the report's tables, in --split) "
                         "or --image PATH")
    run = load_run(args.run, data_dir=args.data_dir, device=device_of(args))
    source = from_file(args.image, run.config) if args.image else from_split(run, args.split, args.index)
    options = ExplainOptions(layers=args.layer or None, cam_layer=args.cam_layer, filters=args.filters,
                             channels=args.channels, ig_steps=args.ig_steps,
                             ascent=AscentSettings(steps=args.steps, seed=args.seed))
    print(explain_run(run, source, options, out_dir=args.out))  # the page, last line, for scripts
    return 0


def register(sub) -> None:
    """Add `explain` to cnnlab's sub-commands."""
    e = add_command(sub, "explain", "activations, filters and Grad-CAM heatmaps for one image of a run", [
        "cnnlab explain runs/004-a-20261204-101500 --index 7",
        "cnnlab explain runs/004-a-20261204-101500 --image cat.jpg --layer 1 --layer -1 --out cat-page"])
    add_run_arg(e)
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
    add_out_flag(e, "page folder (default <run>/explain/<split>-<idx> or image-<name>)")
    add_data_dir_flag(e, for_run=True)
    add_device_flag(e)
    e.set_defaults(func=_cmd_explain)


__all__ = ["register"]
