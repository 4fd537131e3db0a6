"""Runs airbench94 (Keller Jordan's public legacy/airbench94.py, not part of this project) as a peer.

    cd DATA_ROOT && python airbench_peer.py PEER_FILE RUNS [--warmup] [--json OUT.json]

DATA_ROOT holds cifar10/train.pt and cifar10/test.pt (benchmarks/gpu_data.py unpack writes them),
which is where the peer's CifarLoader('cifar10', ...) looks before it would download. The peer
file is imported unchanged, as a module (its `if __name__ == "__main__"` block, 25 runs and a log
file, does not run), and its own main(run) is called RUNS times, after one main('warmup') if asked:
the warm-up call that its __main__ block carries commented out (dummy labels; it pays cuDNN's
autotuning outside the timed runs). Each run's printed table is passed through; the result of each
run is its final row: tta_val_acc and total_time_seconds (the peer's own CUDA-event timing of the
whitening init, the training epochs and the TTA evaluation; its per-epoch evaluations are not
timed), plus our host wall clock around main(run) (data loading and untimed evaluations included).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import sys
import time
from pathlib import Path


class Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self):
        for st in self.streams:
            st.flush()


def final_row(text: str, columns: list[str]) -> dict:
    """The last table row with epoch 'eval' that the peer printed in `text`, as {column: value}.
    `columns`: the peer's logging_columns_list (its header is printed once, before the runs)."""
    header, row = [c.strip() for c in columns], None
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == len(header) and dict(zip(header, cells)).get("epoch") == "eval":
            row = dict(zip(header, cells))
    if row is None:
        raise RuntimeError("the peer printed no final 'eval' row")
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("peer", type=Path)
    ap.add_argument("runs", type=int)
    ap.add_argument("--warmup", action="store_true")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    peer_path = a.peer.resolve()
    spec = importlib.util.spec_from_file_location("airbench94", peer_path)
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    import torch

    cuda = torch.cuda.is_available()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    out = {"peer": str(peer_path), "peer_sha256": hashlib.sha256(peer_path.read_bytes()).hexdigest(),
           "gpu": torch.cuda.get_device_name(0) if cuda else None, "torch": torch.__version__, "runs": []}
    peer.print_columns(peer.logging_columns_list, is_head=True)
    if a.warmup:
        t0 = time.perf_counter()
        peer.main("warmup")
        out["warmup_wall_s"] = round(time.perf_counter() - t0, 3)
    for run in range(a.runs):
        buf = io.StringIO()
        stdout = sys.stdout
        sys.stdout = Tee(stdout, buf)
        try:
            sync()
            t0 = time.perf_counter()
            tta = peer.main(run)
            sync()
            wall = time.perf_counter() - t0
        finally:
            sys.stdout = stdout
        row = final_row(buf.getvalue(), peer.logging_columns_list)
        out["runs"].append({"run": run, "tta_val_acc": float(tta), "total_time_seconds": float(row["total_time_seconds"]),
                            "host_wall_s": round(wall, 3)})
    print("PEER_RESULT " + json.dumps(out))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
