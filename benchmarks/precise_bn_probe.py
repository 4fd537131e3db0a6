"""Accuracy probe: a finished run's test accuracy with the batch-norm statistics it saved (the moving
averages of its last training batches) against statistics recomputed as the mean over N un-augmented
training batches (`precise_bn`, cnnlab.train.batchnorm_stats), for several N and draws. The weights
stay as trained; only the statistics change. Not a speed benchmark: it prints accuracies.

    .venv/bin/python benchmarks/precise_bn_probe.py RUN_DIR --data-dir /work/data --out probe.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from cnnlab.atomic import write_atomically
from cnnlab.runs import load_run
from cnnlab.train.batchnorm_stats import recompute_batchnorm_stats, training_batchnorms
from cnnlab.train.predict import evaluate


def probe(run_dir: str, data_dir: str | None, batches: list[int], draws: int, batch_size: int) -> dict:
    run = load_run(run_dir, data_dir=data_dir)
    cfg = run.config
    amp = torch.bfloat16 if cfg.precision == "bf16" else None
    model, train, test, norm = run.model, run.split("train"), run.split("test"), run.normalizer

    def test_acc() -> float:
        return evaluate(model, test.images, test.labels, norm, cfg.eval_batch_size, amp, True).accuracy

    saved = {k: v.clone() for k, v in model.state_dict().items()}
    names = training_batchnorms(model, cfg.model.frozen_bn)
    rows = []
    for n in batches:
        for draw in range(draws):
            model.load_state_dict(saved)
            used = recompute_batchnorm_stats(model, names, train.images, norm, n, batch_size,
                                             torch.Generator().manual_seed(draw), amp, True)
            rows.append({"batches": n, "images": used, "draw": draw, "test_acc": test_acc()})
    model.load_state_dict(saved)
    return {"run": str(run_dir), "batchnorm_layers": len(names), "precision": cfg.precision,
            "moving_test_acc": test_acc(), "precise": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--batches", default="5,20,50,196", help="comma-separated batch counts")
    ap.add_argument("--draws", type=int, default=2, help="draws of the batches per count (seeds 0..)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="write the result as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = probe(args.run_dir, args.data_dir, [int(b) for b in args.batches.split(",")], args.draws,
                   args.batch_size)
    print(f"moving statistics: test {result['moving_test_acc']:.2%}")
    for row in result["precise"]:
        print(f"precise_bn {row['batches']:>4} batches ({row['images']:,} images), draw {row['draw']}: "
              f"test {row['test_acc']:.2%}")
    if args.out:
        write_atomically(Path(args.out), lambda tmp: tmp.write_text(json.dumps(result, indent=1) + "\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
