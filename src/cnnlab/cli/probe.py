"""`cnnlab layers`, `cnnlab features` and `cnnlab probe`: features from any layer of a run, and
classifiers probed on them (reports 000-d, 002-b, 004-f); each handler is a few lines over
``cnnlab.features`` and the probe page.
"""
from __future__ import annotations

import argparse
import sys
import time

from pathlib import Path

from cnnlab.cli.common import add_command, add_data_dir_flag, add_device_flag, add_out_flag, add_run_arg, device_of

SPLIT_CHOICES = ("train", "val", "test")


def _set_threads(threads: int) -> None:
    import torch

    if threads < 1:
        raise ValueError(f"--threads {threads}: give at least 1")
    torch.set_num_threads(threads)


def _load(args: argparse.Namespace):
    from cnnlab.runs import load_run

    return load_run(args.run, data_dir=args.data_dir, device=device_of(args))


def _check_layers(run, layers: list[str]) -> None:
    """UnknownLayerError before any extraction, so a misspelt second layer does not fail after a long first one.

    A layer with a features folder was extracted from this model before: it needs no check (and
    a lazy run handle then loads neither the model nor the data).
    """
    from cnnlab.features.cache import FOLDER
    from cnnlab.features.layers import find_layer, model_layers
    unchecked = [layer for layer in layers if not (run.run_dir / FOLDER / layer).is_dir()]
    if unchecked:
        known = model_layers(run.model, run.input_shape, include_all=True)
        for layer in unchecked:
            find_layer(known, layer)


def _cmd_layers(args: argparse.Namespace) -> int:
    from cnnlab.features.layers import format_layers, model_layers
    run = _load(args)
    shape = run.input_shape
    print(f"{args.run}: input {' x '.join(map(str, shape))}")
    print(format_layers(model_layers(run.model, shape, include_all=args.all)))
    return 0


def _cmd_features(args: argparse.Namespace) -> int:
    from cnnlab.features.cache import cached_features
    run = _load(args)
    device = device_of(args)
    _check_layers(run, args.layer)
    for layer in args.layer:
        for split in args.split or run.available_splits():
            start = time.perf_counter()
            fs = cached_features(run, layer, split, recompute=args.recompute, batch_size=args.batch_size,
                                 device=device, folder=args.out)
            how = f"computed in {time.perf_counter() - start:.1f} s" if fs.computed else "cached"
            print(f"{fs.path}  {fs.features.shape[0]:,} x {fs.features.shape[1]:,}  ({how})")
    return 0


def _subset(text: str) -> int | None:
    if text == "all":
        return None
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of images or 'all'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} images: give a positive number or 'all'")
    return value


def probe_spec(args: argparse.Namespace):
    """The ProbeSpec of parsed `cnnlab probe` arguments, the preset filling what was not given."""
    from cnnlab.features.knn import parse_ks
    from cnnlab.features.probe import ProbeSpec, check_spec, with_preset

    given = {"layers": args.layer, "ks": parse_ks(args.knn) if args.knn else None,
             "svm": args.svm or None, "logreg": args.logreg or None, "tsne": args.tsne or None,
             "train_subsets": args.train_subset, "fit_split": args.fit_split, "score_splits": args.score_split,
             "first": args.first, "holdout": args.holdout, "seed": args.seed, "tsne_points": args.tsne_points,
             "name": args.name}
    given = {k: v for k, v in given.items() if v is not None}
    spec = with_preset(ProbeSpec(**given), args.preset, set(given))
    check_spec(spec)
    return spec


def _cmd_probe(args: argparse.Namespace) -> int:
    from cnnlab.features.cache import cached_features
    from cnnlab.features.probe import run_probe
    from cnnlab.report.probe_page import knn_table, probe_outcome, results_table, write_probe_page

    spec = probe_spec(args)
    if args.threads is not None:
        _set_threads(args.threads)
    run = _load(args)
    device = device_of(args)
    _check_layers(run, spec.layers)

    def load(layer: str, split: str):
        fs = cached_features(run, layer, split, recompute=args.recompute, device=device,
                             folder=Path(args.out) / "features" if args.out else None)
        print(f"features {layer} / {split}: {len(fs):,} x {fs.features.shape[1]:,} "
              f"({'computed' if fs.computed else 'cached'})", file=sys.stderr)
        return fs

    result = run_probe(spec, load, list(run.classes), device=device, log=lambda m: print(m, file=sys.stderr))
    print(results_table(result))
    if result.curves:
        print("\nkNN accuracy at every k (* = best k of the column)")
        print(knn_table(result))
    for note in result.notes:
        print(f"note: {note}")
    page = write_probe_page(result, args.run, out_dir=args.out)
    print(probe_outcome(result, page))
    print(page)  # the last line is the page, for scripts
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    add_run_arg(parser)
    add_data_dir_flag(parser, for_run=True)
    add_device_flag(parser)


def register(sub) -> None:
    """Add the `layers`, `features` and `probe` commands to ``sub`` (from ``add_subparsers``)."""
    lay = add_command(sub, "layers", "layer names of a run's model with their output shapes", [
        "cnnlab layers runs/004-a-20261204-101500 --all"])
    _common(lay)
    lay.add_argument("--all", action="store_true", help="also activations, batch norm, dropout...")
    lay.set_defaults(func=_cmd_layers)

    feat = add_command(sub, "features", "extract a layer's features to <run>/features/<layer>/<split>.npz", [
        "cnnlab features runs/004-a-20261204-101500 --layer flatten --split train --split test"])
    _common(feat)
    feat.add_argument("--layer", action="append", required=True, metavar="NAME", help="repeatable; see cnnlab layers")
    feat.add_argument("--split", action="append", choices=SPLIT_CHOICES, help="repeatable (default: every split)")
    feat.add_argument("--recompute", action="store_true", help="ignore the cached files")
    add_out_flag(feat, "folder for the features (<out>/<layer>/<split>.npz) instead of <run>/features; the run "
                       "folder is then only read")
    feat.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default: eval_batch_size)")
    feat.set_defaults(func=_cmd_features)

    pr = add_command(sub, "probe", "kNN / linear SVM / logistic regression / t-SNE on a run's features", [
        "cnnlab probe runs/000-a-20261204-101500 --preset 000-d",
        "cnnlab probe runs/004-a-20261204-101500 --layer flatten --knn 1..40 --svm --train-subset 1000"])
    _common(pr)
    pr.add_argument("--layer", action="append", metavar="NAME", help="repeatable; see cnnlab layers")
    pr.add_argument("--knn", metavar="KS", help="kNN over k values: 1..40, 12 or 1,5,10..20")
    pr.add_argument("--svm", action="store_true", help="one-vs-rest linear SVM")
    pr.add_argument("--logreg", action="store_true", help="logistic regression")
    pr.add_argument("--tsne", action="store_true", help="t-SNE map per layer, coloured by class")
    pr.add_argument("--train-subset", action="append", type=_subset, metavar="N",
                    help="fit on N images (stratified, seeded); repeatable; 'all' for every image")
    pr.add_argument("--fit-split", choices=SPLIT_CHOICES, help="split to fit on (default train)")
    pr.add_argument("--score-split", action="append", choices=SPLIT_CHOICES, help="repeatable (default test)")
    pr.add_argument("--first", type=int, metavar="N", help="only the first N images of the fit split")
    pr.add_argument("--holdout", type=float, metavar="FRACTION",
                    help="score on this fraction of the fit split, held out (stratified, seeded)")
    pr.add_argument("--preset", choices=("000-d", "002-b", "004-f"), help="a report's probe; options given override it")
    pr.add_argument("--seed", type=int, help="seed of subsets, hold-out and t-SNE (default 0)")
    pr.add_argument("--tsne-points", type=int, metavar="N", help="at most N points per t-SNE map (default 2000)")
    pr.add_argument("--name", help="folder under <run>/probes/ (default: the preset, else the layers)")
    pr.add_argument("--recompute", action="store_true", help="re-extract the features")
    add_out_flag(pr, "folder for the page, results.json and the features (<out>/features) instead of "
                     "<run>/probes/<name> and <run>/features; the run folder is then only read")
    pr.add_argument("--threads", type=int, help="CPU threads for torch and scikit-learn (default: torch's)")
    pr.set_defaults(func=_cmd_probe)


__all__ = ["probe_spec", "register"]
