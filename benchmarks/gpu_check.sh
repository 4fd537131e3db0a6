#!/usr/bin/env bash
# GPU check (issue 38, item 5): one prepared script for a lent CUDA GPU, at most BUDGET_S seconds
# (default 450: the issue's 8 minutes less a margin). On a machine without CUDA it skips every part
# with a one-line reason and exits 0.
#
#   bash benchmarks/gpu_check.sh            (from the repository root or anywhere)
#
# Parts, in order:
#   1. data      real CIFAR-10 rebuilt from the parts of benchmarks/gpu_data.py (searched in
#                GPU_CHECK_PARTS: "/tmp/gpu_check_parts data-parts"), checked against the bundle's SHA-256
#   2. cuda-tests  pytest tests/test_cuda.py and the other CUDA tests (they skip without CUDA)
#   3. resume    benchmarks/gpu_resume_check.py: SIGKILL mid-run, `cnnlab train --resume`, compare with
#                an uninterrupted run bitwise: (a) 004-a's CNN with deterministic=true on 4,000 real
#                images (synthetic ones if the real data is incomplete), (b) recipes/fast-gpu.yaml as
#                shipped (cuDNN autotuning on) on 5,000 real images
#   4. time94    benchmarks/gpu_time94.py: airbench94 (PEER, default peer/airbench94.py: Keller Jordan's
#                public legacy/airbench94.py, fetched read-only, never part of this project) and
#                recipes/fast-gpu.yaml, RUNS runs each, time to 94% test accuracy
# Output: OUT (default ./gpu-check-out): gpu_check.log (everything printed), summary.json, the JSON of
# each part, and results.tar.gz (logs, pytest XML, run folders without weights or checkpoints).
# Each part prints a line `RESULT <part>: PASS|FAIL|SKIP <reason>`. Exit 1 if a part failed, else 0.
# GPU_CHECK_DRYRUN=1 walks the CUDA parts on the CPU to test this script before a GPU is spent on it:
# resume checks with device=cpu, tiny cnnlab runs, PEER a stand-in; its numbers mean nothing.
set -u -o pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$HERE"
PY=${PYTHON:-python3}
OUT=${OUT:-$HERE/gpu-check-out}
WORK=${GPU_CHECK_WORK:-${TMPDIR:-/tmp}/gpu_check}
PARTS_DIRS=${GPU_CHECK_PARTS:-"/tmp/gpu_check_parts $HERE/data-parts"}
PEER=${PEER:-$HERE/peer/airbench94.py}
BUDGET_S=${BUDGET_S:-450}
RUNS=${RUNS:-3}
EPOCHS=${EPOCHS:-24}
T0=$(date +%s)
T_END=$((T0 + BUDGET_S))
mkdir -p "$OUT" "$WORK/res"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
export PYTHONPATH="$HERE/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
FAILED=0
declare -A STATUS

result() {   # part, PASS|FAIL|SKIP, reason
    STATUS[$1]="$2 $3"
    echo "RESULT $1: $2 $3"
    [ "$2" = FAIL ] && FAILED=1
    return 0
}
left() { echo $((T_END - $(date +%s))); }
pack() {
    cp "$WORK"/res/*.json "$OUT"/ 2>/dev/null
    tar -czf "$OUT/results.tar.gz" -C "$WORK" --exclude='*.safetensors' --exclude='*.pt' --exclude='*.npz' \
        --exclude='checkpoints' res 2>/dev/null
    return 0
}

echo "== gpu_check.sh $(date -u +%Y-%m-%dT%H:%M:%SZ), budget ${BUDGET_S} s, in $HERE"
[ -f "$HERE/GIT_COMMIT" ] && echo "cnnlab commit: $(cat "$HERE/GIT_COMMIT")"
git -C "$HERE" rev-parse HEAD 2>/dev/null | sed 's/^/cnnlab git HEAD: /'
echo "python: $($PY -c 'import sys; print(sys.executable, sys.version.split()[0])')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,utilization.gpu --format=csv
CUDA=$($PY -c 'import torch; print(torch.__version__, torch.version.cuda, int(torch.cuda.is_available()), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-", sep="|")')
echo "torch|cuda|available|gpu: $CUDA"
HAVE_CUDA=$(echo "$CUDA" | cut -d'|' -f3)
DRY=${GPU_CHECK_DRYRUN:-0}
RDEV=cuda
DRY_O=()
if [ "$DRY" = 1 ]; then
    echo "DRY RUN: the CUDA parts run on the CPU, on tiny budgets; no number here is a measurement"
    HAVE_CUDA=1; RDEV=cpu
    DRY_O=(-o device=cpu -o data.train_subset=1000 -o data.test_subset=500 -o threads=2)
fi
NOCUDA="torch.cuda.is_available() is False (no CUDA GPU here)"

# 1. data --------------------------------------------------------------------------------------------
DATA="$WORK/data"
REAL=0
if [ "$HAVE_CUDA" != 1 ]; then
    result data SKIP "$NOCUDA"
else
    PARTS=()
    declare -A SEEN=()
    for d in $PARTS_DIRS; do for f in "$d"/cifar10-part*of*.npz; do   # each part once, the first place found
        [ -f "$f" ] && [ -z "${SEEN[$(basename "$f")]:-}" ] && SEEN[$(basename "$f")]=1 && PARTS+=("$f")
    done; done
    echo "data parts found: ${PARTS[*]:-none}"
    if [ ${#PARTS[@]} -eq 0 ]; then
        result data SKIP "no part files in $PARTS_DIRS"
    elif timeout 120 $PY benchmarks/gpu_data.py unpack "$DATA" "${PARTS[@]}" > "$WORK/res/data.json"; then
        REAL=1
        result data PASS "$(cat "$WORK/res/data.json")"
    else
        rc=$?
        rm -f "$WORK/res/data.json"
        if [ $rc -eq 3 ]; then result data SKIP "real CIFAR-10 incomplete (a part missing): real-data parts fall back or skip"
        else result data FAIL "gpu_data.py unpack exited $rc"; fi
    fi
fi
echo "[$(left) s left]"

# 2. CUDA tests --------------------------------------------------------------------------------------
CUDA_TESTS="tests/test_cuda.py tests/test_data_augment.py::test_generator_on_another_device_type_is_an_error tests/test_models_airbench.py::test_channels_last_auto_is_on_for_cpu_and_cuda"
if [ "$HAVE_CUDA" != 1 ]; then
    result cuda-tests SKIP "$NOCUDA"
else
    echo "== pytest $CUDA_TESTS"
    timeout 200 $PY -m pytest -p no:cacheprovider -rA -q $CUDA_TESTS --junitxml="$WORK/res/cuda-tests.xml" \
        2>&1 | tee "$WORK/res/cuda-tests.log"
    rc=$?
    counts=$($PY - "$WORK/res/cuda-tests.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
try:
    r = ET.parse(sys.argv[1]).getroot()
    s = r if r.tag == "testsuite" else r.find("testsuite")
    t, f, e, k = (int(s.get(x, 0)) for x in ("tests", "failures", "errors", "skipped"))
    print(f"{t - f - e - k} passed, {f} failed, {e} errors, {k} skipped")
except Exception as ex:
    print(f"no junit xml ({ex})")
EOF
)
    if [ $rc -eq 0 ]; then result cuda-tests PASS "$counts"; else result cuda-tests FAIL "pytest exited $rc: $counts"; fi
fi
pack
echo "[$(left) s left]"

# 3. resume bitwise on CUDA -------------------------------------------------------------------------
if [ "$HAVE_CUDA" != 1 ]; then
    result resume SKIP "$NOCUDA"
else
    if [ $REAL = 1 ]; then
        RDATA="$DATA"; KIND=real
        O004=(-o data.val_size=1000 -o data.train_subset=4000 -o data.test_subset=1000 -o epochs=3 -o batch_size=128)
    else
        RDATA="$WORK/synthetic"; KIND=synthetic
        $PY -c "import sys; sys.path.insert(0, 'tests'); from engine_helpers import make_learnable_cifar10 as m; m(sys.argv[1])" "$RDATA"
        O004=(-o data.val_size=20 -o epochs=3 -o batch_size=16 -o eval_batch_size=64)
    fi
    for name in resume-004a-det resume-fastgpu-default; do
        if [ "$(left)" -lt 300 ]; then result "$name" SKIP "$(left) s left of the budget"; continue; fi
        if [ $name = resume-004a-det ]; then
            args=(--recipe recipes/004-a.yaml "${O004[@]}" -o deterministic=true -o augment.hflip=true -o augment.crop_padding=2)
        elif [ $REAL = 1 ]; then
            args=(--recipe recipes/fast-gpu.yaml -o data.train_subset=5000 -o data.test_subset=1000 -o epochs=3 -o tta=false)
        else
            result "$name" SKIP "needs the real data"; continue
        fi
        echo "== resume check $name ($KIND data)"
        [ "$DRY" = 1 ] && args+=(-o data.train_subset=2000 -o threads=2)
        timeout 200 $PY benchmarks/gpu_resume_check.py --name "$name" --data-dir "$RDATA" --work "$WORK/res/$name" \
            --json "$WORK/res/$name.json" --kill-epoch 1 --kill-step 5 --device $RDEV "${args[@]}" | cut -c1-3000
        rc=$?
        verdict=$($PY -c "import json,sys; r=json.load(open(sys.argv[1])); print('ERROR', r['error'][:300]) if 'error' in r else print('bitwise' if r['bitwise'] else 'NOT bitwise', '(%d of %d tensors differ, max abs %.3g; %d metric-row fields differ)' % (r['tensors_differing'], r['tensors'], r['max_abs_diff'], r['n_row_diffs']))" "$WORK/res/$name.json" 2>/dev/null || echo "no result")
        case "$verdict" in
            bitwise*) result "$name" PASS "$verdict, $KIND data" ;;
            "NOT bitwise"*) if [ $name = resume-004a-det ]; then result "$name" FAIL "$verdict, $KIND data"
                            else result "$name" PASS "(informational, cuDNN autotuning on) $verdict, $KIND data"; fi ;;
            *) result "$name" FAIL "rc $rc: $verdict" ;;
        esac
    done
fi
pack
echo "[$(left) s left]"

# 4. time to 94%: cnnlab's GPU recipe beside airbench94 ----------------------------------------------
if [ "$HAVE_CUDA" != 1 ]; then
    result time94 SKIP "$NOCUDA"
elif [ $REAL != 1 ]; then
    result time94 SKIP "the full real CIFAR-10 is not here (see the data part)"
elif [ ! -f "$PEER" ]; then
    result time94 SKIP "the peer $PEER is absent (copy airbench's legacy/airbench94.py there at check time)"
elif [ "$(left)" -lt 90 ]; then
    result time94 SKIP "$(left) s left of the budget"
else
    echo "== time94: peer $PEER (sha256 $(sha256sum "$PEER" | cut -c1-16)...), recipes/fast-gpu.yaml, $RUNS runs each"
    timeout $(( $(left) - 10 )) $PY benchmarks/gpu_time94.py --data "$DATA" --peer "$PEER" --out "$WORK/res/time94" \
        --runs "$RUNS" --epochs "$EPOCHS" --deadline $((T_END - 15)) "${DRY_O[@]}"
    rc=$?
    cp "$WORK/res/time94/time94.json" "$WORK/res/time94.json" 2>/dev/null
    if [ $rc -eq 0 ]; then result time94 PASS "see time94.json"; else result time94 FAIL "gpu_time94.py exited $rc"; fi
fi

# summary -------------------------------------------------------------------------------------------
{
    for k in "${!STATUS[@]}"; do printf '%s\t%s\n' "$k" "${STATUS[$k]}"; done
} > "$WORK/res/status.tsv"
$PY - "$WORK/res" "$CUDA" "$((  $(date +%s) - T0 ))" > "$WORK/res/summary.json" <<'EOF'
import json, sys
from pathlib import Path
res, cuda, secs = Path(sys.argv[1]), sys.argv[2].split("|"), int(sys.argv[3])
out = {"torch": cuda[0], "cuda": cuda[1], "cuda_available": cuda[2] == "1", "gpu": cuda[3], "script_seconds": secs,
       "parts": dict(line.split("\t", 1) for line in (res / "status.tsv").read_text().splitlines() if "\t" in line)}
for name in ("data", "resume-004a-det", "resume-fastgpu-default", "time94"):
    p = res / f"{name}.json"
    if p.exists():
        r = json.loads(p.read_text())
        if name == "time94":
            r = {k: r.get(k) for k in ("target", "recipe", "runs_each", "skipped")} | {
                "airbench94": {k: r.get("airbench94", {}).get(k) for k in ("tta_val_acc", "total_time_seconds", "host_wall_s", "command_wall_s", "warmup_wall_s", "error")},
                "cnnlab": (r.get("cnnlab") or {}).get("summary"), "cnnlab_second": (r.get("cnnlab_second") or {}).get("summary"),
                "cnnlab_second_epochs": (r.get("cnnlab_second") or {}).get("epochs")}
        elif name.startswith("resume"):
            r = {k: r.get(k) for k in ("bitwise", "weights_bitwise", "rows_equal", "tensors", "tensors_differing", "max_abs_diff", "n_row_diffs", "seconds", "error")}
        out[name] = r
print(json.dumps(out, indent=1))
EOF
pack
echo "== done in $(( $(date +%s) - T0 )) s; parts:"
sort "$WORK/res/status.tsv" | sed 's/^/  /'
exit $FAILED
