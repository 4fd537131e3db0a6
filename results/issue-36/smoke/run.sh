#!/bin/bash
# Baseline/after smoke: same commands, compare weights and metrics rows.
# usage: run.sh OUTDIR
set -e
OUT=$1; REPO=${2:-/work/main}; mkdir -p $OUT; cd $REPO; export PYTHONPATH=$REPO/src
export CNNLAB_DATA=/work/data
C="/work/main/.venv/bin/python -m cnnlab"
for r in recipes/*.yaml; do $C config $r > $OUT/config-$(basename $r .yaml).txt 2>&1 || true; done
$C train recipes/004-a.yaml --runs-dir $OUT/runs -o epochs=1 -o data.train_subset=4000 -o threads=1 --quiet > $OUT/a.log 2>&1
A=$(tail -1 $OUT/a.log)
$C train recipes/004-a.yaml --runs-dir $OUT/runs -o name=distill -o epochs=2 -o data.train_subset=2000 -o threads=1 -o "distill.teacher=$A" -o "optimizer.lookahead={every: 5}" -o regularization.ema=0.99 --quiet > $OUT/b.log 2>&1
$C train recipes/002-c-half-random.yaml --runs-dir $OUT/runs -o stages.0.steps=30 -o data.train_subset=2000 -o threads=1 -o task.eval_pairs=500 -o task.centroid_images=500 --quiet > $OUT/c.log 2>&1
/work/main/.venv/bin/python - $OUT <<'PY'
import sys, json, hashlib
from pathlib import Path
out = Path(sys.argv[1])
for run in sorted((out/"runs").iterdir()):
    from safetensors.torch import load_file
    W = load_file(str(run/"model.safetensors"))   # tensors, not file bytes: safetensors writes metadata in hash-map order
    h = hashlib.sha256(b"".join(k.encode() + W[k].contiguous().numpy().tobytes() for k in W)).hexdigest()[:16]
    rows = [json.loads(l) for l in (run/"metrics.jsonl").read_text().splitlines()]
    for r in rows: r.pop("seconds", None); r.pop("images_per_sec", None)
    s = json.loads((run/"summary.json").read_text())
    print(run.name.split("-",2)[-1], h, json.dumps(rows, sort_keys=True), json.dumps(s["final"], sort_keys=True))
PY
