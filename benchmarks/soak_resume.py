"""Soak test of resume (issue 39, item 4): N random SIGKILL/resume cycles over every surface.

    PYTHONPATH=src .venv/bin/python benchmarks/soak_resume.py N [--seed S] [--surfaces a,b] [--work DIR]

Each cycle picks a surface and 1-3 random kill points, SIGKILLs the run at each in turn (each
kill a resume of the last), resumes it to the end, and compares every tensor of the final weights
and every metrics row (timing keys aside) with an uninterrupted run of that surface (computed once).
It prints one line per cycle and "K/N bitwise" at the end; the exit code is 1 if any cycle differed.

Surfaces (tiny generated CIFAR, threads=1):
  state      classification with warm-up cosine, EMA, L2, label smoothing, Lookahead, early stopping
  distill    the same, distilled from a tiny teacher
  transfer   two stages (head with SGD, then everything with Adam); kills in either stage
  siamese    002-c-half-random on a small twin
  sweep      a 2-point sweep killed between the points or inside the second; the first point's
             files must stay untouched
  seeds      `train --seeds 3` killed in the second seed
  tempfile   killed while checkpoints/last.pt's temporary file exists (polled for)
  ddp        2 gloo ranks, rank 1 SIGKILLed at a random step; the launcher must end within a bound
             naming the lost rank; resumed on 2 ranks

Runs are forked from this process (torch and cnnlab imported once), except DDP's ranks.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["OMP_NUM_THREADS"] = "1"

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

import resume_worker  # noqa: E402
from engine_helpers import STATEFUL_OVERRIDES, make_learnable_cifar10, tiny_overrides  # noqa: E402
from cnnlab.runfolder import find_runs  # noqa: E402

KILLED = -signal.SIGKILL
TIMING = ("seconds", "images_per_sec")
STATE = STATEFUL_OVERRIDES   # the run of tests/test_engine_resume_state.py
TRANSFER = tiny_overrides(batch_size=16, **{
    "stages": "[{steps: 16, trainable: head, optimizer: sgd, lr: 0.01}, {epochs: 1, trainable: all, lr: 0.0005}]",
    "schedule.name": "cosine", "augment.hflip": "true"})
SIAMESE_RECIPE = str(REPO / "recipes" / "002-c-half-random.yaml")
SIAMESE = tiny_overrides(batch_size=16, **{
    "model.name": "cnn004", "model.kwargs": "{}", "model.init": "default", "task.embed_from": "features",
    "task.embedding_dim": 16, "stages": "[{steps: 30}]", "optimizer.lr": 0.001, "augment.hflip": "true",
    "task.eval_pairs": 50, "task.centroid_images": 60})
TEMP_RUN = tiny_overrides(epochs=40, batch_size=64, **{"optimizer.lookahead": "{every: 2, decay: 0.8, ramp: 1.0}",
                                                       "regularization.ema": 0.9})
TINY_EXP = """\
name: tiny
data: {name: cifar10, val_size: 20, download: false}
model: {name: sequential, kwargs: {layers: [{conv_bn_act: 4}, {pool: 2}, {conv_bn_act: 8}, {pool: {kind: global_avg}}, dense]}}
optimizer: {name: adam, lr: 0.01}
batch_size: 16
eval_batch_size: 64
threads: 1
epochs: 2
"""
DDP_EXP = """\
name: ddp-tiny
data: {name: cifar10, val_size: 20, download: false}
model:
  name: sequential
  kwargs: {layers: [{conv: 8}, relu, {pool: 2}, {conv: 16}, relu, {pool: {kind: global_avg}}, dense]}
optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
regularization: {l2: 0.0005}
augment: {hflip: true, crop_padding: 2, rotation: 10}
epochs: 2
batch_size: 8
eval_batch_size: 64
threads: 1
channels_last: false
seed: 0
"""
DDP_STEPS = 23          # 180 images, batch 8
DDP_BOUND_S = 90        # the surviving rank must end within this after the kill (--ddp-timeout 20)


class Mismatch(AssertionError):
    pass


# --- running --------------------------------------------------------------------------------------
def fork_worker(argv: list[str], cwd: Path, poll=None) -> int:
    """resume_worker.main(argv) in a forked child (cwd `cwd`, output to a log); its exit code, or
    minus the signal that killed it. `poll(pid)` is called every ~0.2 ms while it runs (and may kill it)."""
    log = cwd / "worker.log"
    pid = os.fork()
    if pid == 0:   # the child
        code = 1
        try:
            os.chdir(cwd)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            code = resume_worker.main(argv) or 0
        except SystemExit as err:
            code = err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG if poll else 0)
        if done:
            return os.waitstatus_to_exitcode(status)
        poll(pid)
        time.sleep(0.0002)


def expect(code: int, want: int, what: str, cwd: Path) -> None:
    if code != want:
        tail = (cwd / "worker.log").read_text()[-3000:] if (cwd / "worker.log").exists() else ""
        raise RuntimeError(f"{what}: exit {code}, expected {want}\n{tail}")


def only_run(runs: Path) -> Path:
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    return run


def rows(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(x).items() if k not in TIMING}
            for x in (run / "metrics.jsonl").read_text().splitlines()]


def compare(run: Path, ref: Path, what: str) -> None:
    for name in ("model.safetensors", "checkpoints/best.safetensors"):
        if not (ref / name).exists():
            continue
        a, b = load_file(str(run / name)), load_file(str(ref / name))
        if a.keys() != b.keys():
            raise Mismatch(f"{what}: {name} holds other tensors")
        diff = [k for k in a if not torch.equal(a[k], b[k])]
        if diff:
            worst = max((a[k].double() - b[k].double()).abs().max().item() for k in diff)
            raise Mismatch(f"{what}: {name}: {len(diff)} tensors differ (worst by {worst:.3g}): {diff[:3]}")
    if rows(run) != rows(ref):
        raise Mismatch(f"{what}: metrics rows differ")
    if list(run.rglob("*.tmp")):
        raise Mismatch(f"{what}: stale temporary files left")


def files_and_mtimes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def sweep_runs(cwd: Path) -> list[Path]:
    (sweep_dir,) = (cwd / "runs").glob("sweep-tiny-*")
    return [run for point in sorted(sweep_dir.glob("p[0-9][0-9]")) for run in find_runs(point)]


def distinct_steps(rng: random.Random, total: int, most: int = 3) -> list[int]:
    return sorted(rng.sample(range(total), rng.randint(1, most)))


# --- surfaces -------------------------------------------------------------------------------------
class Soak:
    def __init__(self, work: Path, data: Path):
        self.work, self.data, self.refs, self.count = work, data, {}, 0
        self.teacher = None
        (work / "exp.yaml").write_text(TINY_EXP)
        (work / "ddp.yaml").write_text(DDP_EXP)

    def fresh(self, name: str) -> Path:
        self.count += 1
        folder = self.work / f"{self.count:04d}-{name}"
        folder.mkdir()
        return folder

    # plain runs through resume_worker: (overrides, recipe, steps per epoch, steps trained)
    def plain(self, name: str):
        if name == "state":
            return STATE, None, 6, 18           # early-stops after epoch 3 of 6
        if name == "distill":
            if self.teacher is None:
                cwd = self.fresh("teacher")
                expect(fork_worker([str(self.data), "runs", "-1", "-1", json.dumps(tiny_overrides(epochs=1))], cwd),
                       0, "teacher", cwd)
                self.teacher = only_run(cwd / "runs")
            return STATE + [f"distill.teacher={self.teacher}", "distill.temperature=2", "distill.alpha=0.5"], \
                None, 6, 18
        if name == "transfer":
            return TRANSFER, None, 12, 28
        if name == "siamese":
            return SIAMESE, SIAMESE_RECIPE, 12, 30
        raise KeyError(name)

    def plain_argv(self, overrides, recipe, kill=(-1, -1), resume=None) -> list[str]:
        argv = [str(self.data), "runs", str(kill[0]), str(kill[1]), json.dumps(overrides)]
        argv += [str(resume)] if resume else []
        return argv + (["--recipe", recipe] if recipe else [])

    def reference(self, name: str, make):
        if name not in self.refs:
            self.refs[name] = make()
        return self.refs[name]

    def cycle_plain(self, name: str, rng: random.Random) -> str:
        overrides, recipe, per_epoch, total = self.plain(name)

        def make():
            cwd = self.fresh(f"{name}-ref")
            expect(fork_worker(self.plain_argv(overrides, recipe), cwd), 0, f"{name} reference", cwd)
            return only_run(cwd / "runs")

        ref = self.reference(name, make)
        cwd = self.fresh(name)
        kills = [divmod(g, per_epoch) for g in distinct_steps(rng, total)]
        run = None
        for kill in kills:
            expect(fork_worker(self.plain_argv(overrides, recipe, kill, run), cwd), KILLED, f"kill at {kill}", cwd)
            run = only_run(cwd / "runs")
        expect(fork_worker(self.plain_argv(overrides, recipe, resume=run), cwd), 0, "resume", cwd)
        compare(only_run(cwd / "runs"), ref, name)
        return f"kills at (epoch, step) {kills}"

    def sweep_like(self, name: str, command: list[str], kill_in: str, kills: list[tuple[int, int]]) -> str:
        def make():
            cwd = self.fresh(f"{name}-ref")
            expect(fork_worker(self.cli_argv(command, kill_in), cwd), 0, f"{name} reference", cwd)
            return sweep_runs(cwd)

        refs = self.reference(name, make)
        cwd = self.fresh(name)
        done = None
        for kill in kills:
            expect(fork_worker(self.cli_argv(command, kill_in, kill), cwd), KILLED, f"kill at {kill}", cwd)
            first = sweep_runs(cwd)[0]
            if done is None:
                done = files_and_mtimes(first)
            elif files_and_mtimes(first) != done:
                raise Mismatch(f"{name}: the finished run's files changed")
        expect(fork_worker(self.cli_argv(command, kill_in), cwd), 0, "resume", cwd)
        runs = sweep_runs(cwd)
        if files_and_mtimes(runs[0]) != done:
            raise Mismatch(f"{name}: the finished run's files changed")
        if len(runs) != len(refs):
            raise Mismatch(f"{name}: {len(runs)} runs, the reference has {len(refs)}")
        for run, ref in zip(runs, refs):
            compare(run, ref, f"{name} {run.parent.name}/{run.name[-3:]}")
        return f"killed in {kill_in} at {kills}"

    def cli_argv(self, command, kill_in, kill=(-1, -1)) -> list[str]:
        return [str(self.data), "-", str(kill[0]), str(kill[1]), "--cli", json.dumps(command), "--kill-in", kill_in]

    def cycle_sweep(self, rng: random.Random) -> str:
        command = ["sweep", str(self.work / "exp.yaml"), "--grid", "epochs=1,3", "--grid", "optimizer.lr=0.01",
                   "--data-dir", str(self.data), "--runs-dir", "runs", "-q", "--no-report"]
        kills = [divmod(g, 12) for g in distinct_steps(rng, 36, 2)]   # p01: 3 epochs of 12 steps
        if rng.random() < 0.4:
            kills = [(resume_worker.BETWEEN, 0)] + kills[:rng.randint(0, 1)]
        return self.sweep_like("sweep", command, "p01", kills)

    def cycle_seeds(self, rng: random.Random) -> str:
        command = ["train", str(self.work / "exp.yaml"), "--seeds", "3", "--data-dir", str(self.data),
                   "--runs-dir", "runs", "-q", "--no-report"]
        kills = [divmod(g, 12) for g in distinct_steps(rng, 24, 2)]
        return self.sweep_like("seeds", command, "p00/s1", kills)

    def cycle_tempfile(self, rng: random.Random) -> str:
        def make():
            cwd = self.fresh("tempfile-ref")
            expect(fork_worker(self.plain_argv(TEMP_RUN, None), cwd), 0, "tempfile reference", cwd)
            return only_run(cwd / "runs")

        ref = self.reference("tempfile", make)
        cwd = self.fresh("tempfile")
        want, caught, tries, run = rng.randint(1, 2), 0, 0, None
        # skip a random number of checkpoint writes first, so the kills land at random epochs
        while caught < want and tries < 12:
            tries += 1
            state = {"skip": rng.randint(0, 8), "seen": set(), "left": False}

            def poll(pid, state=state):
                runs = cwd / "runs"
                for folder in (runs.iterdir() if runs.is_dir() else []):
                    try:
                        names = [n for n in os.listdir(folder / "checkpoints") if n.startswith(".last.pt.")]
                    except FileNotFoundError:
                        continue
                    new = [n for n in names if n not in state["seen"]]
                    if not new:
                        continue
                    state["seen"].update(new)
                    if len(state["seen"]) <= state["skip"]:
                        continue
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)   # reaped here; fork_worker's waitpid then fails: see below
                    state["left"] = any(n.startswith(".last.pt.") for n in os.listdir(folder / "checkpoints"))
                    raise _Killed()

            try:
                code = fork_worker(self.plain_argv(TEMP_RUN, None, resume=run), cwd, poll=poll)
            except _Killed:
                run = only_run(cwd / "runs")
                caught += state["left"]
                continue
            expect(code, 0, "tempfile run ended before a kill", cwd)
            break
        if caught == 0:
            raise Mismatch("tempfile: no kill landed while the temporary file existed")
        expect(fork_worker(self.plain_argv(TEMP_RUN, None, resume=run), cwd), 0, "resume", cwd)
        compare(only_run(cwd / "runs"), ref, "tempfile")
        return f"{tries} kills, {caught} with last.pt's temporary file present"

    # DDP: subprocesses (ranks started by hand as torchrun would, rank 1 SIGKILLs itself)
    def ddp_args(self, runs: Path, *extra: str) -> list[str]:
        return ["train", str(self.work / "ddp.yaml"), "--runs-dir", str(runs), "--data-dir", str(self.data), "-q",
                "--no-report", *extra]

    def cycle_ddp(self, rng: random.Random) -> str:
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))

        def make():
            cwd = self.fresh("ddp-ref")
            proc = subprocess.run([sys.executable, "-m", "cnnlab", *self.ddp_args(cwd / "runs", "--nproc", "2")],
                                  cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
            if proc.returncode:
                raise RuntimeError(f"ddp reference: {proc.stderr[-3000:]}")
            return only_run(cwd / "runs")

        ref = self.reference("ddp", make)
        cwd = self.fresh("ddp")
        runs = cwd / "runs"
        # agreements: 2 per step; past the first epoch so a checkpoint exists (or not: any step)
        after = rng.randint(1, 2 * 2 * DDP_STEPS - 2)
        port = free_port()
        procs = []
        started = time.monotonic()
        for rank in (0, 1):
            renv = dict(env, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
            cmd = [sys.executable, str(REPO / "tests" / "ddp_worker.py"), "1", "KILL", str(after), "--",
                   *self.ddp_args(runs, "--ddp-timeout", "20")]
            procs.append(subprocess.Popen(cmd, env=renv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
        outs = []
        for p in procs:
            try:
                outs.append(p.communicate(timeout=DDP_BOUND_S + 120))
            except subprocess.TimeoutExpired:
                for q in procs:
                    q.kill()
                raise Mismatch(f"ddp: a rank hung (kill at agreement {after})")
        took = time.monotonic() - started
        codes = [p.returncode for p in procs]
        if codes[1] != KILLED or codes[0] != 1:
            raise RuntimeError(f"ddp: exit codes {codes} (kill at agreement {after}): {outs[0][1][-2000:]}")
        if "rank 0/2 lost the other ranks" not in outs[0][1]:
            raise Mismatch(f"ddp: the survivor's message does not name the lost ranks: {outs[0][1][-1000:]}")
        if not runs.is_dir() or not [p for p in runs.iterdir() if p.is_dir()]:
            resume = None   # killed before rank 0 created the run folder: start over
        else:
            resume = only_run(runs)
        args = (["train", "--resume", str(resume), "--data-dir", str(self.data), "-q", "--no-report", "--nproc", "2"]
                if resume else self.ddp_args(runs, "--nproc", "2"))
        proc = subprocess.run([sys.executable, "-m", "cnnlab", *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=600)
        if proc.returncode:
            raise RuntimeError(f"ddp resume: {proc.stderr[-3000:]}")
        compare(only_run(runs), ref, "ddp")
        return f"rank 1 killed at agreement {after} (step {(after - 1) // 2}); survivor ended in {took:.0f} s"


class _Killed(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SURFACES = ["state", "distill", "transfer", "siamese", "sweep", "seeds", "tempfile", "ddp"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("n", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--surfaces", default=",".join(SURFACES))
    p.add_argument("--work", help="keep the runs here (default: a temporary folder, removed at the end)")
    args = p.parse_args()
    torch.set_num_threads(1)
    surfaces = args.surfaces.split(",")
    rng = random.Random(args.seed)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="soak-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    data = make_learnable_cifar10(work / "data")
    soak = Soak(work, data)
    print(f"soak: {args.n} cycles over {', '.join(surfaces)} (seed {args.seed}), torch {torch.__version__}",
          flush=True)
    good = 0
    for i in range(1, args.n + 1):
        surface = surfaces[(i - 1) % len(surfaces)] if i <= len(surfaces) else rng.choice(surfaces)
        try:
            if surface in ("state", "distill", "transfer", "siamese"):
                how = soak.cycle_plain(surface, rng)
            else:
                how = getattr(soak, f"cycle_{surface}")(rng)
            good += 1
            print(f"{i:4d} {surface:9s} bitwise   {how}", flush=True)
        except Mismatch as err:
            print(f"{i:4d} {surface:9s} MISMATCH  {err}", flush=True)
        except Exception as err:   # noqa: BLE001 - a failed cycle is a finding, reported like a mismatch
            print(f"{i:4d} {surface:9s} FAILED    {type(err).__name__}: {str(err)[-1500:]}", flush=True)
    print(f"{good}/{args.n} bitwise", flush=True)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if good == args.n else 1


if __name__ == "__main__":
    sys.exit(main())
