"""Resume bitwise check on CUDA: a run SIGKILLed mid-epoch and continued with `cnnlab train --resume`
must end on the same weights and metrics rows as the same config trained without a stop.

    python benchmarks/gpu_resume_check.py --data-dir DIR --work DIR [--recipe recipes/004-a.yaml]
        [-o KEY=VALUE ...] [--kill-epoch 1 --kill-step 5] [--device cuda] [--json OUT.json] [--name NAME]

The CPU version is tests/test_engine_resume.py (tests/resume_worker.py kills the process); this runs
the same three processes on the GPU: (1) the reference, `cnnlab train` start to end; (2) the same
command in a worker that SIGKILLs itself right after the optimizer step (KILL_EPOCH, KILL_STEP),
KILL_EPOCH counted from 0 as the engine's callbacks see it; (3) `cnnlab train --resume RUN`. Then
model.safetensors is compared tensor by tensor (torch.equal) and metrics.jsonl row by row on every
field but the timings (seconds, images_per_sec). Prints one JSON line `RESUME_RESULT {...}` and
exits 0 whatever the comparison says (the JSON says "bitwise": true/false); 2 when a step of the
procedure itself failed. With --device cuda and no GPU it prints a SKIP line and exits 0.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIMING = {"seconds", "images_per_sec"}
sys.path.insert(0, str(REPO / "tests"))
from resume_worker import KillAt  # noqa: E402  (the SIGKILL-after-step callback the CPU resume tests use)


def worker(recipe: str, runs_dir: str, data_dir: str, epoch: int, step: int, overrides: list[str]) -> None:
    from cnnlab.train.experiment import load_experiment
    from cnnlab.train.loop import train

    cfg = load_experiment(Path(recipe), overrides)
    train(cfg, runs_dir=runs_dir, data_dir=data_dir, quiet=True, log=lambda s: None, callbacks=[KillAt(epoch, step)])
    print("the worker finished without reaching its kill step", file=sys.stderr)
    sys.exit(4)


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [str(REPO / "src"), os.environ.get("PYTHONPATH")] if p)}


def _run(cmd: list[str], timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=timeout, cwd=REPO)
    return proc, round(time.perf_counter() - t0, 2)


def _only_run(runs: Path) -> Path:
    dirs = [p for p in runs.iterdir() if p.is_dir()] if runs.is_dir() else []
    if len(dirs) != 1:
        raise RuntimeError(f"{runs}: expected one run folder, found {len(dirs)}")
    return dirs[0]


def compare(ref_run: Path, run: Path) -> dict:
    import torch
    from safetensors.torch import load_file

    a, b = load_file(str(ref_run / "model.safetensors")), load_file(str(run / "model.safetensors"))
    differ = [k for k in a if k not in b or not torch.equal(a[k], b[k])]
    max_abs = max(((a[k].double() - b[k].double()).abs().max().item() for k in differ if k in b and a[k].shape == b[k].shape),
                  default=0.0)
    rows_a = [json.loads(x) for x in (ref_run / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    fields = sorted({k for r in rows_a + rows_b for k in r} - TIMING)
    row_diffs = [{"epoch": ra.get("epoch"), "field": f, "reference": ra.get(f), "resumed": rb.get(f)}
                 for ra, rb in zip(rows_a, rows_b) for f in fields if ra.get(f) != rb.get(f)]
    same_keys = a.keys() == b.keys()
    same_rows = len(rows_a) == len(rows_b) and not row_diffs
    return {"tensors": len(a), "tensors_differing": len(differ), "differing_names": differ[:10],
            "max_abs_diff": max_abs, "same_keys": same_keys, "rows_reference": len(rows_a), "rows_resumed": len(rows_b),
            "row_fields_compared": fields, "row_diffs": row_diffs[:10], "n_row_diffs": len(row_diffs),
            "weights_bitwise": same_keys and not differ, "rows_equal": same_rows,
            "bitwise": same_keys and not differ and same_rows}


def check(a) -> dict:
    overrides = list(a.override) + [f"device={a.device}", "data.download=false"]
    recipe = str((REPO / a.recipe).resolve()) if not Path(a.recipe).is_absolute() else a.recipe
    work = Path(a.work)
    ref_runs, kill_runs = work / "reference", work / "killed"
    common = ["--data-dir", str(a.data_dir), "-q", "--no-report"]
    out = {"name": a.name, "recipe": a.recipe, "overrides": overrides, "kill_at": {"epoch": a.kill_epoch, "step": a.kill_step},
           "data_dir": str(a.data_dir), "device": a.device, "seconds": {}}
    train_cmd = [sys.executable, "-m", "cnnlab.cli", "train", recipe, "--runs-dir", str(ref_runs), *common]
    for o in overrides:
        train_cmd += ["-o", o]
    proc, out["seconds"]["reference"] = _run(train_cmd, a.timeout)
    if proc.returncode != 0:
        return {**out, "error": f"reference run failed ({proc.returncode}): {proc.stderr[-2000:]}"}
    ref = _only_run(ref_runs)
    proc, out["seconds"]["killed"] = _run([sys.executable, str(Path(__file__).resolve()), "worker", recipe, str(kill_runs),
                                           str(a.data_dir), str(a.kill_epoch), str(a.kill_step), json.dumps(overrides)],
                                          a.timeout)
    out["killed_returncode"] = proc.returncode
    if proc.returncode != -signal.SIGKILL:
        return {**out, "error": f"the worker was not SIGKILLed (rc {proc.returncode}): {proc.stderr[-2000:]}"}
    run = _only_run(kill_runs)
    out["after_kill"] = {"model_safetensors_exists": (run / "model.safetensors").exists(),
                         "metrics_rows": len((run / "metrics.jsonl").read_text().splitlines())
                         if (run / "metrics.jsonl").exists() else 0,
                         "tmp_files": len(list(run.rglob("*.tmp")))}
    proc, out["seconds"]["resume"] = _run([sys.executable, "-m", "cnnlab.cli", "train", "--resume", str(run), *common],
                                          a.timeout)
    if proc.returncode != 0:
        return {**out, "error": f"resume failed ({proc.returncode}): {proc.stderr[-2000:]}"}
    out["resume_stderr_tail"] = proc.stderr[-600:]
    out.update(compare(ref, run))
    summary = json.loads((run / "summary.json").read_text())
    out["resumed_summary"] = {k: summary.get(k) for k in ("status", "device", "epochs_completed", "resumed_by")}
    out["runs"] = {"reference": str(ref), "resumed": str(run)}
    return out


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "worker":
        recipe, runs, data, epoch, step, overrides = argv[1:7]
        worker(recipe, runs, data, int(epoch), int(step), json.loads(overrides))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--recipe", default="recipes/004-a.yaml")
    ap.add_argument("-o", "--override", action="append", default=[])
    ap.add_argument("--kill-epoch", type=int, default=1)
    ap.add_argument("--kill-step", type=int, default=5)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--timeout", type=float, default=240)
    ap.add_argument("--name", default="resume")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    if a.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print(f"SKIP {a.name}: torch.cuda.is_available() is False (no CUDA GPU here)")
            return
    try:
        result = check(a)
    except Exception as e:   # noqa: BLE001 - reported in the JSON, the script goes on
        result = {"name": a.name, "error": f"{type(e).__name__}: {e}"}
    line = json.dumps(result)
    print("RESUME_RESULT " + line)
    if a.json:
        a.json.write_text(json.dumps(result, indent=1) + "\n")
    sys.exit(2 if "error" in result else 0)


if __name__ == "__main__":
    main()
