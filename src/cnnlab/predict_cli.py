"""`cnnlab predict` and `cnnlab export`: a trained run used on new images, or exported to one file.
``register(subparsers)`` adds both commands to the main parser; each handler is a few lines
over ``cnnlab.runs.load_run`` and ``cnnlab.export``.
"""
from __future__ import annotations

import argparse
import sys

WEIGHTS_HELP = "weights file inside the run folder (default model.safetensors; or checkpoints/best.safetensors)"


def _cmd_predict(args: argparse.Namespace) -> int:
    from cnnlab.export import format_predictions, predict_files, write_predictions
    from cnnlab.runs import load_run

    if args.top_k < 1:
        raise ValueError(f"--top-k {args.top_k}: give 1 or more")
    if args.out and not args.out.lower().endswith((".csv", ".json")):
        raise ValueError(f"--out {args.out}: name the file .csv or .json")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"--device {args.device}: no CUDA device is available here; use --device cpu")
    run = load_run(args.run, weights=args.weights, device=args.device)
    result = predict_files(run, args.paths, tta=args.tta, batch_size=args.batch_size)
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
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from cnnlab.export import export_run
    from cnnlab.runs import load_run

    run = load_run(args.run, data_dir=args.data_dir, weights=args.weights)
    result = export_run(run, args.format, out=args.out, check=not args.no_check, check_limit=args.check_images)
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


def register(subparsers) -> None:
    """Add `predict` and `export` to the main parser's sub-commands."""
    from cnnlab.export.formats import FORMATS
    from cnnlab.export.run_export import CHECK_IMAGES

    p = subparsers.add_parser("predict", help="top-k classes of a run for image files or folders",
                              description="Predict image files (any size or mode: they are converted and resized "
                              "as the run's training images were). A folder of class folders also gets accuracy, "
                              "a per-class table and a confusion matrix. Unreadable files are listed and skipped.")
    p.add_argument("run", help="a run folder")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders (searched recursively)")
    p.add_argument("--top-k", type=int, default=3, help="classes shown per file (default 3)")
    p.add_argument("--tta", nargs="?", const="flip", default=False, choices=["flip", "flip+translate"],
                   help="test-time augmentation: --tta averages each image with its left-right mirror; "
                   "--tta flip+translate adds both shifted 1 px up-left and down-right (6 views)")
    p.add_argument("--out", default=None, help="also write every prediction to this .csv or .json file")
    p.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default: the run's "
                   "eval_batch_size)")
    p.add_argument("--weights", default="model.safetensors", help=WEIGHTS_HELP)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.set_defaults(func=_cmd_predict)

    e = subparsers.add_parser("export", help="a run's model as one ONNX / pt2 / TorchScript file (uint8 in)",
                              description="Export a run's model with its normalization inside: it takes uint8 "
                              "N x C x H x W RGB images and returns N x K probabilities. The file is checked "
                              "against PyTorch (onnxruntime for ONNX) on the run's test images before it is written.")
    e.add_argument("run", help="a run folder")
    e.add_argument("--format", default="onnx", choices=FORMATS,
                   help="onnx (default), pt2 (torch.export), torchscript (deprecated by torch)")
    e.add_argument("--out", default=None, help="output file (default: model.onnx / model.pt2 / "
                   "model.torchscript.pt in the run folder)")
    e.add_argument("--check-images", type=int, default=CHECK_IMAGES,
                   help=f"images of the test split the export is checked on (default {CHECK_IMAGES})")
    e.add_argument("--no-check", action="store_true", help="write without comparing to PyTorch")
    e.add_argument("--data-dir", default=None, help="where the run's dataset is, for the check")
    e.add_argument("--weights", default="model.safetensors", help=WEIGHTS_HELP)
    e.set_defaults(func=_cmd_export)
