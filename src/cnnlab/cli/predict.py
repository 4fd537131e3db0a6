"""`cnnlab predict` and `cnnlab export`: a trained run used on new images, or exported to one file;
each handler is a few lines over ``cnnlab.runs.load_run`` and ``cnnlab.export``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnlab.cli.common import (EXIT_ERROR, add_command, add_data_dir_flag, add_device_flag, add_out_flag, add_run_arg,
                               add_tta_flag, device_of)

WEIGHTS_HELP = "weights file inside the run folder (default model.safetensors; or checkpoints/best.safetensors)"


def _cmd_predict(args: argparse.Namespace) -> int:
    from cnnlab.export import format_predictions, predict_files, write_predictions
    from cnnlab.runs import load_run

    if args.top_k < 1:
        raise ValueError(f"--top-k {args.top_k}: give 1 or more")
    if args.out and not args.out.lower().endswith((".csv", ".json")):
        raise ValueError(f"--out {args.out}: name the file .csv or .json")
    run = load_run(args.run, data_dir=args.data_dir, weights=args.weights, device=device_of(args))
    if args.top_k > len(run.classes):
        print(f"note: --top-k {args.top_k} is more than this run's {len(run.classes)} classes; showing all "
              f"{len(run.classes)}", file=sys.stderr)
    result = predict_files(run, args.paths, tta=args.tta, batch_size=args.batch_size)
    named = {str(Path(p)) for p in args.paths if not Path(p).is_dir()}
    named_failures = {p: r for p, r in result.failed.items() if str(Path(p)) in named}
    if not result.files:
        raise ValueError(f"none of the {len(result.failed)} file(s) could be read as an image: "
                         + "; ".join(f"{p}: {r}" for p, r in list(result.failed.items())[:3]))
    if args.out:
        write_predictions(result, args.out, args.top_k, run_dir=run.run_dir)
        brief = format_predictions(result, args.top_k, list_files=False).strip()
        if brief:
            print(brief)
        print(f"predictions of {len(result.files)} file(s): {args.out}")
    else:
        print(format_predictions(result, args.top_k))
    if named_failures:   # a file asked for by name that cannot be predicted is an error (folders skip bad files)
        print(f"cnnlab: error: {len(named_failures)} file(s) named on the command line could not be predicted: "
              + "; ".join(f"{p}: {r}" for p, r in named_failures.items()), file=sys.stderr)
        return EXIT_ERROR
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from cnnlab.export import export_run
    from cnnlab.runs import load_run

    # The export itself traces the model on the CPU (cnnlab.export.packaged); --device is checked
    # and used for loading the run like every other command.
    run = load_run(args.run, data_dir=args.data_dir, weights=args.weights, device=device_of(args))
    result = export_run(run, args.format, out=args.out, check=not args.no_check, check_limit=args.check_images,
                        output=args.output)
    c = result.contract
    print(f"input: {c['input.shape']} {c['input.dtype']} {c['input.channels']} ({c['input.layout']}), "
          f"normalization inside; output: {c['output']}")
    if result.check is not None:
        print(result.check.summary())
    else:
        print("not checked (--no-check)", file=sys.stderr)
    size = f"{result.bytes / 2**20:.1f} MiB" if result.bytes >= 2**20 else f"{result.bytes / 2**10:.0f} KiB"
    print(f"{result.path}  ({size}, {result.format})")
    return 0


def register(sub) -> None:
    """Add `predict` and `export` to cnnlab's sub-commands."""
    from cnnlab.export.formats import FORMATS
    from cnnlab.export.packaged import OUTPUTS
    from cnnlab.export.run_export import CHECK_IMAGES

    p = add_command(sub, "predict", "top-k classes of a run for image files or folders", [
        "cnnlab predict runs/004-a-20261204-101500 cat.jpg dog.png --top-k 5",
        "cnnlab predict runs/004-a-20261204-101500 photos/ --tta --out predictions.csv"],
        description="Predict image files (any size or mode: they are converted and resized as the run's training "
                    "images were). A folder of class folders also gets accuracy, a per-class table and a confusion "
                    "matrix; so does a pre-split root (train/, test/ of class folders). Files in folders that cannot be read are "
                    "counted, listed and skipped; a file named on the command line that is missing or unreadable "
                    "makes the command exit with status 1 (after predicting the others).")
    add_run_arg(p)
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders (searched recursively)")
    p.add_argument("--top-k", type=int, default=3, help="classes shown per file (default 3)")
    add_tta_flag(p, "test-time augmentation: ")
    add_out_flag(p, "also write every prediction to this .csv or .json file")
    p.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default: the run's "
                   "eval_batch_size)")
    p.add_argument("--weights", default="model.safetensors", help=WEIGHTS_HELP)
    add_data_dir_flag(p, for_run=True)
    add_device_flag(p)
    p.set_defaults(func=_cmd_predict)

    e = add_command(sub, "export", "a run's model as one ONNX / pt2 / TorchScript file (uint8 in)", [
        "cnnlab export runs/004-a-20261204-101500",
        "cnnlab export runs/004-a-20261204-101500 --format pt2 --out model.pt2",
        "cnnlab export runs/004-a-20261204-101500 --output logits      # model-logits.onnx"],
        description="Export a run's model with its normalization inside: it takes uint8 N x C x H x W RGB images "
                    "and returns N x K probabilities (--output logits: the raw scores). The file is checked against PyTorch (onnxruntime for ONNX) on "
                    "the run's test images before it is written. The export itself runs on the CPU.")
    add_run_arg(e)
    e.add_argument("--format", default="onnx", choices=FORMATS,
                   help="onnx (default), pt2 (torch.export), torchscript (deprecated by torch)")
    e.add_argument("--output", default="probabilities", choices=OUTPUTS,
                   help="what the file returns: probabilities (default; softmax inside) or logits (for calibration, "
                   "temperature scaling, ensembles)")
    add_out_flag(e, "output file (default: model.onnx / model.pt2 / model.torchscript.pt in the run folder; "
                 "model-logits.onnx etc. with --output logits)")
    e.add_argument("--check-images", type=int, default=CHECK_IMAGES,
                   help=f"images of the test split the export is checked on (default {CHECK_IMAGES})")
    e.add_argument("--no-check", action="store_true", help="write without comparing to PyTorch")
    add_data_dir_flag(e, for_run=True)
    e.add_argument("--weights", default="model.safetensors", help=WEIGHTS_HELP)
    add_device_flag(e)
    e.set_defaults(func=_cmd_export)


__all__ = ["register"]
