"""Train the 004-a CNN with cnnlab's own trainer and print one JSON line of its speed.

Uses the public API exactly as a user would (load_experiment + train), on recipe 004-a with the
benchmark's size overrides. Epochs are timed by a cnnlab callback from epoch begin to epoch end,
so the per-epoch checkpoint and metrics writes a user pays for are included (validation is off);
cnnlab's own per-epoch "seconds" from metrics.jsonl (training steps only) is kept beside it.
    .venv/bin/python benchmarks/cnnlab_004a.py --num-images 10000 --epochs 3 [--compile]
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from pathlib import Path

from bench_common import (BATCH_SIZE, EpochClock, EXPECTED_PARAMS_004A, LEARNING_RATE, build_arg_parser, check_run_args,
                          print_result, result_record)
from cifar_pickles import CifarDataError, find_cifar10_folder

DEFAULT_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "004-a.yaml"
# Final evaluation after training is not timed; a small stratified test subset keeps the run short.
TEST_SUBSET = 100


class RecipeMismatch(ValueError):
    """The recipe trains something other than the benchmark's model and recipe."""


def benchmark_overrides(num_images: int, epochs: int, threads: int, seed: int, compile_on: bool = False,
                        precision: str = "fp32") -> list[str]:
    """Overrides that pin the run to the benchmark's size and to the 004-a recipe's speed-relevant parts."""
    return [f"compile={str(compile_on).lower()}", f"precision={precision}",
        f"epochs={epochs}", f"batch_size={BATCH_SIZE}", f"seed={seed}", f"threads={threads}", "device=cpu",
        "optimizer.name=adam", f"optimizer.lr={LEARNING_RATE}",
        "data.name=cifar10", "data.normalize=unit",  # pixels / 255, as in the report
        f"data.train_subset={num_images}", "data.val_size=0", f"data.test_subset={TEST_SUBSET}", "data.download=false",
        "early_stopping.patience=0",  # every epoch must run
    ]


def check_recipe(cfg) -> None:
    """Refuse recipes that would time different work than the other frameworks (augmentation, EMA, ...)."""
    from cnnlab.data.config import AugmentConfig

    if dataclasses.asdict(cfg.augment) != dataclasses.asdict(AugmentConfig()):
        raise RecipeMismatch(f"the recipe turns on augmentation ({cfg.augment}); the benchmark times the plain "
                             "004-a recipe; pass --recipe with one that has no augment section")
    reg = cfg.regularization
    if reg.ema or reg.l2 or reg.grad_clip or reg.label_smoothing:
        raise RecipeMismatch(f"the recipe adds regularization ({reg}) that the Keras and plain loops do not do; "
                             "pass --recipe with the plain 004-a recipe")


def main(argv: list[str] | None = None) -> int:
    """Parse flags, train through cnnlab's API, print the JSON result line; returns the exit code."""
    parser = build_arg_parser("cnnlab training speed on the 004-a CNN.")
    parser.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE, help="experiment YAML; default: %(default)s")
    parser.add_argument("--compile", action="store_true",
                        help="train with compile: true (torch.compile; its compiling falls in the untimed first epoch, "
                             "and the first epoch's seconds are in the JSON line)")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="keep the run folder here (default: a temporary folder, deleted afterwards)")
    args = parser.parse_args(argv)
    check_run_args(parser, args)
    if not args.recipe.is_file():
        parser.error(f"--recipe {args.recipe} does not exist; pass the 004-a experiment YAML")
    try:
        # The same folder rule as the other scripts (cnnlab's own), strictly: never $CNNLAB_DATA's data instead.
        data_folder = find_cifar10_folder(args.data_dir)
    except CifarDataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

    import cnnlab
    import torch
    from cnnlab.train.experiment import load_experiment
    from cnnlab.train import train
    from cnnlab.data.errors import DataError
    from cnnlab.train.callbacks import Callback

    clock = EpochClock()

    class EpochTimer(Callback):
        """Epoch begin -> epoch end, as seen by user code hooked into cnnlab's loop."""

        def on_epoch_begin(self, epoch: int, logs: dict) -> None:
            clock.start()

        def on_epoch_end(self, epoch: int, logs: dict) -> None:
            clock.stop()

    try:
        # ConfigError and RecipeMismatch are ValueErrors whose messages name the key and the fix.
        cfg = load_experiment(args.recipe, overrides=benchmark_overrides(args.num_images, args.epochs, args.threads,
                                                                          args.seed, args.compile, args.precision))
        check_recipe(cfg)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-") as tmp:
        runs_dir = args.runs_dir or Path(tmp)
        try:
            result = train(cfg, runs_dir=runs_dir, data_dir=str(data_folder), quiet=True, log=lambda _msg: None,
                           callbacks=[EpochTimer()])
        except DataError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]

    if result.status != "completed" or len(rows) != args.epochs or len(clock.wall_seconds) != args.epochs:
        print(f"error: cnnlab run ended {result.status!r} after {len(rows)} of {args.epochs} epochs", file=sys.stderr)
        return 1
    trained_on = result.summary.get("data", {}).get("train")
    if trained_on != args.num_images:
        print(f"error: cnnlab trained on {trained_on} images, asked for {args.num_images}", file=sys.stderr)
        return 1
    params = result.summary["params"]
    if params["total"] != EXPECTED_PARAMS_004A:
        print(f"warning: model {cfg.model.name} has {params['total']:,} params, 004-a has {EXPECTED_PARAMS_004A:,}",
              file=sys.stderr)

    record = result_record(
        "cnnlab_compile" if args.compile else "cnnlab", args, clock,
        params=int(params["total"]), trainable_params=int(params["trainable"]),
        final_train_accuracy=float(rows[-1]["train_acc"]),
        versions={"cnnlab": getattr(cnnlab, "__version__", "unknown"), "torch": torch.__version__},
        model=cfg.model.name, recipe=str(args.recipe),
        cnnlab_reported_epoch_seconds=[r.get("seconds") for r in rows],
    )
    print_result(record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
