"""Real CIFAR-10 for the GPU check (benchmarks/gpu_check.sh), moved in parts and rebuilt there.

The bundle ../shared/datasets/cifar10.npz (every image, WebP lossless, 106 MB) is larger than one
transfer to the lent GPU machine may be (64 MiB with the working tree), and re-compressing the raw
pixels does worse (xz -9e: 23.3 MB per 10,000 images against WebP's 17.7 MB). So the WebP blobs are
cut, unchanged, into parts of about equal size that travel in separate calls:

    python benchmarks/gpu_data.py pack ../shared/datasets/cifar10.npz OUTDIR --parts 2
    python benchmarks/gpu_data.py unpack DEST PART.npz [PART.npz ...]

`unpack` decodes the parts it is given (in parallel), checks each split against the bundle's SHA-256
of its pixels, and writes
    DEST/cifar-10-batches-py/   the publisher's pickle layout that cnnlab reads (5 x 10,000 + test)
    DEST/airbench/cifar10/{train,test}.pt   the cache airbench94.py looks for before it downloads:
                                {'images': uint8 N x 32 x 32 x 3, 'labels': int64 N, 'classes': [str]}
Both hold the same images in the same (the bundle's fixed, shuffled) order. If a split is not
complete (a part missing) it exits 3 and writes nothing.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pickle
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

SPLITS = ("train", "test")
INCOMPLETE = 3


def pack(bundle: Path, out: Path, parts: int) -> list[Path]:
    src = np.load(bundle)
    count = {s: len(src[f"{s}_offsets"]) - 1 for s in SPLITS}
    meta = {"classes": [c.decode() for c in src["classes"]], "parts": parts,
            "sha256": {s: str(src[f"{s}_sha256"]) for s in SPLITS}, "count": count}
    # One global index over train then test; cut where the bytes are split evenly.
    sizes = np.concatenate([np.diff(src[f"{s}_offsets"]) for s in SPLITS])
    ends = np.cumsum(sizes)
    cuts = [0] + [int(np.searchsorted(ends, ends[-1] * k / parts)) + 1 for k in range(1, parts)] + [len(sizes)]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for k in range(parts):
        lo, hi = cuts[k], cuts[k + 1]
        arrays = {}
        base = 0
        for split, n in count.items():
            a, b = max(lo - base, 0), min(hi - base, n)
            if a < b:
                off = src[f"{split}_offsets"]
                arrays[f"{split}_webp"] = src[f"{split}_webp"][off[a]:off[b]]
                arrays[f"{split}_offsets"] = off[a:b + 1] - off[a]
                arrays[f"{split}_labels"] = src[f"{split}_labels"][a:b]
                arrays[f"{split}_start"] = np.int64(a)
            base += n
        arrays["meta"] = np.array(json.dumps({**meta, "part": k + 1}))
        path = out / f"cifar10-part{k + 1}of{parts}.npz"
        np.savez(path, **arrays)
        written.append(path)
        print(f"{path}: images {lo}..{hi - 1} of train+test, {path.stat().st_size / 1e6:.1f} MB")
    return written


def _decode(blobs: list[bytes]) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in blobs])


def gather(part_paths: list[Path]) -> tuple[dict, dict]:
    """{split: (list of (start, blobs, labels))}, meta; from whichever parts were given."""
    pieces: dict[str, list] = {s: [] for s in SPLITS}
    meta = None
    for path in part_paths:
        p = np.load(path)
        meta = json.loads(str(p["meta"]))
        for split in SPLITS:
            if f"{split}_webp" in p.files:
                blob, off = p[f"{split}_webp"], p[f"{split}_offsets"]
                blobs = [blob[off[i]:off[i + 1]].tobytes() for i in range(len(off) - 1)]
                pieces[split].append((int(p[f"{split}_start"]), blobs, p[f"{split}_labels"].astype(np.int64)))
    if meta is None:
        print("gpu_data.py unpack: incomplete: no part files found", file=sys.stderr)
        sys.exit(INCOMPLETE)
    return pieces, meta


def coverage(pieces: dict) -> dict:
    return {s: sum(len(b) for _, b, _ in pieces[s]) for s in SPLITS}


def unpack(dest: Path, part_paths: list[Path], workers: int | None = None) -> dict:
    pieces, meta = gather(part_paths)
    have, want = coverage(pieces), meta["count"]
    if any(have[s] != want[s] for s in SPLITS):
        print(f"gpu_data.py unpack: incomplete: train {have['train']} of {want['train']}, test {have['test']} of "
              f"{want['test']} images in {len(part_paths)} of {meta['parts']} parts", file=sys.stderr)
        sys.exit(INCOMPLETE)
    workers = workers or min(16, os.cpu_count() or 1)
    arrays = {}
    with ProcessPoolExecutor(workers) as pool:
        for split in SPLITS:
            ordered = sorted(pieces[split], key=lambda t: t[0])
            blobs = [b for _, bs, _ in ordered for b in bs]
            labels = np.concatenate([lab for _, _, lab in ordered])
            chunks = [blobs[i:i + 2000] for i in range(0, len(blobs), 2000)]
            x = np.concatenate(list(pool.map(_decode, chunks)))
            if hashlib.sha256(x.tobytes()).hexdigest() != meta["sha256"][split]:
                raise SystemExit(f"gpu_data.py unpack: {split}: decoded pixels do not match the bundle's SHA-256")
            arrays[split] = (x, labels)
    classes = meta["classes"]
    folder = dest / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def rows(x):   # publisher's layout: 1024 red, 1024 green, 1024 blue values per image
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), 3072))

    x, y = arrays["train"]
    per = len(x) // 5   # the publisher's 5 training batches (10,000 each for CIFAR-10)
    batches = [(f"data_batch_{i + 1}", slice(i * per, (i + 1) * per if i < 4 else len(x))) for i in range(5)]
    batches.append(("test_batch", slice(0, len(arrays["test"][0]))))
    for name, sl in batches:
        xs, ys = arrays["test"] if name == "test_batch" else (x, y)
        d = {b"batch_label": name.encode(), b"labels": ys[sl].tolist(), b"data": rows(xs[sl]),
             b"filenames": [f"{name}_{i}.png".encode() for i in range(sl.start, sl.stop)]}
        with open(folder / name, "wb") as f:
            pickle.dump(d, f, protocol=4)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in classes], b"num_vis": 3072, b"num_cases_per_batch": per},
                    f, protocol=4)
    (folder / ".complete").touch()

    import torch

    peer = dest / "airbench" / "cifar10"
    peer.mkdir(parents=True, exist_ok=True)
    for split, (xs, ys) in arrays.items():
        torch.save({"images": torch.from_numpy(xs), "labels": torch.from_numpy(ys), "classes": classes},
                   peer / f"{split}.pt")
    info = {"train": len(arrays["train"][0]), "test": len(arrays["test"][0]), "sha256_checked": True,
            "cnnlab_dir": str(dest), "airbench_dir": str(dest / "airbench")}
    print(json.dumps(info))
    return info


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("bundle", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--parts", type=int, default=2)
    u = sub.add_parser("unpack")
    u.add_argument("dest", type=Path)
    u.add_argument("parts", type=Path, nargs="+")
    u.add_argument("--workers", type=int, default=None)
    a = ap.parse_args(argv)
    if a.cmd == "pack":
        pack(a.bundle, a.out, a.parts)
    else:
        unpack(a.dest, [p for p in a.parts if p.is_file()], a.workers)


if __name__ == "__main__":
    main()
