"""kNN sweep benchmark: cnnlab's one-pass sweep of k = 1..40 vs scikit-learn's KNeighborsClassifier per k.

Random float32 features (uniform, 10 classes), fit N x D, query M x D. cnnlab computes the
distances once (blocked torch matmul) and reads every k from one top-k; scikit-learn
(algorithm="brute", the fastest for D = 512) is fitted and asked to predict once per k, which is
what a k = 1..40 loop with it costs. Both use the same number of threads. The accuracies per k
must agree exactly; the script fails otherwise.

    .venv/bin/python benchmarks/knn_sweep.py                          # 50,000 x 10,000 x 512 (minutes; quiet machine)
    .venv/bin/python benchmarks/knn_sweep.py --fit 5000 --query 1000  # a quick check
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fit", type=int, default=50_000, help="fit (training) feature rows")
    p.add_argument("--query", type=int, default=10_000, help="query (test) feature rows")
    p.add_argument("--dim", type=int, default=512, help="feature dimension D")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--k-max", type=int, default=40, help="sweep k = 1..K_MAX")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for both (default: torch's)")
    p.add_argument("--device", default="cpu", help="device of cnnlab's sweep (cpu, cuda)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if min(args.fit, args.query, args.dim, args.classes, args.k_max) < 1 or args.k_max > args.fit:
        p.error("sizes must be positive and --k-max at most --fit")
    return args


def main(argv: list[str] | None = None) -> int:
    import torch
    from sklearn.neighbors import KNeighborsClassifier
    from threadpoolctl import threadpool_limits

    from cnnlab.features.knn import knn_sweep

    args = parse_args(argv)
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    rng = np.random.default_rng(args.seed)
    fit_x = rng.random((args.fit, args.dim), dtype=np.float32)
    fit_y = rng.integers(0, args.classes, args.fit)
    query_x = rng.random((args.query, args.dim), dtype=np.float32)
    query_y = rng.integers(0, args.classes, args.query)
    ks = range(1, args.k_max + 1)
    print(f"kNN k = 1..{args.k_max}: fit {args.fit:,} x query {args.query:,} x D {args.dim}, "
          f"{args.classes} classes, {threads} threads", flush=True)

    if args.device.startswith("cuda"):
        knn_sweep(fit_x[:100], fit_y[:100], query_x[:10], query_y[:10], [1], device=args.device)  # CUDA start-up
        torch.cuda.synchronize()
    start = time.perf_counter()
    ours = knn_sweep(fit_x, fit_y, query_x, query_y, ks, device=args.device)
    ours_s = time.perf_counter() - start
    print(f"cnnlab sweep ({args.device}): {ours_s:.2f} s  (best k {ours.best_k}, {100 * ours.best_accuracy:.2f}%)",
          flush=True)

    start = time.perf_counter()
    theirs = []
    with threadpool_limits(limits=threads):
        for k in ks:
            model = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(fit_x, fit_y)
            theirs.append(float((model.predict(query_x) == query_y).mean()))
    sk_s = time.perf_counter() - start
    print(f"scikit-learn loop (brute, {args.k_max} fits): {sk_s:.2f} s", flush=True)
    print(f"ratio: cnnlab is {sk_s / ours_s:.1f}x faster")
    if theirs != ours.accuracies:
        bad = [k for k, a, b in zip(ks, ours.accuracies, theirs) if a != b]
        print(f"MISMATCH: accuracies differ at k = {bad}", file=sys.stderr)
        return 1
    print("accuracies agree for every k")
    return 0


if __name__ == "__main__":
    sys.exit(main())
