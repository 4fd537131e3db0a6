"""The training loop: one readable function from config to a finished run folder.

    train(cfg) -> set up (data, model, optimizer, run folder) -> for each epoch: train_epoch,
    validate, callbacks (metrics file, best weights, early stopping, progress, loggers),
    checkpoint -> final evaluation, model.safetensors, summary.json.

Randomness has three explicit sources so a run is reproducible and resumable bitwise: the
shuffle generator (CPU), the augmentation generator (on the training device) and torch's global
generator (dropout). All three, the loop's TrainState and every stateful callback's state are
saved in each checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import shlex
import signal
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from cnnlab.atomic import remove_stale_temp_files, write_text_atomically
from cnnlab.data import Augmenter, Normalizer, load_splits
from cnnlab.train import distributed, runtime
from cnnlab.train.callbacks import BestWeights, Callback, EarlyStopping, MetricsWriter
from cnnlab.train.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint, save_weights
from cnnlab.train.ema import ModelEMA
from cnnlab.train.epoch import Engine, steps_per_epoch, train_epoch
from cnnlab.train.experiment import ExperimentConfig, SourceRecipe, experiment_to_yaml
from cnnlab.train.finalize import final_evaluation, run_summary
from cnnlab.train.lookahead import Lookahead
from cnnlab.train.loggers import loggers_from_settings
from cnnlab.train.progress import ProgressPrinter
from cnnlab.train.regularization import check_l2_selectors, l2_kernels, l2_penalty, matching_kernels
from cnnlab.train.resume import finished_summary, read_run_config
from cnnlab.train.rundir import RunLock, new_run_dir, write_json
from cnnlab.train.setup import build_model, init_from_data
from cnnlab.train.sources import resolve_pretrained, source_normalizer
from cnnlab.train.stages import plan_stages, stage_at, stage_counts, total_epochs, trainable_prefixes
from cnnlab.train.state import TrainState
from cnnlab.train.task import create_task
from cnnlab.train.teacher import load_teacher

# Free space a new run needs before the data is loaded: a checkpoint of a 15M-parameter model
# with Adam is ~180 MB; below this the run would fail at its first save.
MIN_FREE_BYTES = 64 << 20


class TrainingDiverged(RuntimeError):
    """The loss or the gradients became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class RunResult:
    run_dir: Path
    status: str          # completed | early_stopped | interrupted | diverged
    summary: dict
    splits: object = field(default=None, repr=False)   # the DataSplits it trained on (None for a finished resume)
    rank: int = 0        # this process's rank under DDP; rank 0 wrote the run folder


class _StopRequest:
    """SIGINT/SIGTERM set a flag; the loop saves at the next step boundary. A second Ctrl-C aborts,
    except under DDP: there a terminal's Ctrl-C reaches each rank once directly and once more
    through torchrun, and the ranks must stop together (torchrun kills ranks that do not end)."""

    def __init__(self, second_sigint_aborts: bool = True) -> None:
        self.requested = False
        self.second_sigint_aborts = second_sigint_aborts
        self._old: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:  # noqa: ANN001
        if self.requested and signum == signal.SIGINT and self.second_sigint_aborts:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "_StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: no handlers, Ctrl-C behaves as usual
                pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def train(cfg: Optional[ExperimentConfig], runs_dir: str | Path = "runs", *, data_dir: Optional[str] = None,
          quiet: bool = False, resume: Optional[str | Path] = None, seed_suffix: Optional[int] = None,
          callbacks: Optional[list[Callback]] = None, log: Callable[[str], None] = print,
          ddp_timeout: float = distributed.DEFAULT_TIMEOUT_S) -> RunResult:
    """Train `cfg` into a new run folder under `runs_dir`, or continue the run folder `resume`.

    Resuming a finished run changes nothing and returns its summary; a run killed before its
    first checkpoint restarts from its saved config in the same folder. The figures and report
    pages are written by callbacks of the report layer (cnnlab.pipeline.run_experiment adds them).

    Under torchrun (train/distributed.py) every rank calls this: rank 0 reads and writes the run
    folder and runs the callbacks; the others train their shards, log nothing and write nothing.
    A rank that waits more than `ddp_timeout` seconds on the others stops with a message.
    """
    with ExitStack() as stack:
        world = stack.enter_context(distributed.session(ddp_timeout))
        if not world.is_main:   # (its callbacks are dropped in _train, with the built-in ones)
            log, quiet = _silent, True

        def start() -> tuple:
            """On rank 0: the config, checkpoint and folder to go on with (shared with the other
            ranks, which need no access to the run folder), or a finished run's summary."""
            if resume is None:
                if cfg is None:
                    raise ValueError("train() needs an experiment config, or resume= a run folder")
                _check_runs_dir(Path(runs_dir))
                return cfg, None, None, None
            run_dir = Path(resume)
            run_cfg = read_run_config(run_dir)
            stack.enter_context(RunLock(run_dir))
            done = finished_summary(run_dir)
            if done is not None:
                return run_cfg, None, run_dir, done
            ckpt, last = None, run_dir / "checkpoints" / "last.pt"
            if last.is_file():
                ckpt = load_checkpoint(last)
            else:
                log(f"{run_dir} has no checkpoint yet (killed in its first epoch): restarting it from its saved config")
            remove_stale_temp_files(run_dir)   # left by a killed writer; the lock says no one writes now
            return run_cfg, ckpt, run_dir, None

        cfg, ckpt, run_dir, done = world.from_main(start)
        if done is not None:
            log(f"{run_dir} already finished ({done['status']}, {done.get('epochs_completed')}/"
                f"{done.get('epochs')} epochs); nothing to resume. To train longer, start a new run.")
            return RunResult(run_dir, done["status"], done, rank=world.rank)
        return _train(cfg, run_dir, ckpt, stack, world, runs_dir=Path(runs_dir), data_dir=data_dir, quiet=quiet,
                      seed_suffix=seed_suffix, user_callbacks=list(callbacks or []), log=log)


def _silent(message: str) -> None:
    """The log of ranks other than 0: one rank speaks for the run."""


def _train(cfg: ExperimentConfig, run_dir: Optional[Path], ckpt: Optional[dict], stack: ExitStack,
           world: distributed.World, *, runs_dir: Path, data_dir, quiet, seed_suffix, user_callbacks, log) -> RunResult:
    loggers = loggers_from_settings(cfg.logging)   # imports their packages: fails before a run folder exists
    stack.enter_context(runtime.run_settings(cfg.threads, cfg.deterministic))
    if cfg.reuse_memory:
        runtime.reuse_freed_memory()
    session_start = time.perf_counter()
    device = runtime.resolve_device(cfg.device)
    if world.enabled and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())   # this rank's GPU (LOCAL_RANK)
    distributed.check_sync_bn(cfg.sync_bn, device, world)
    # The same seed on every rank: the same weights, order and augmentation draws everywhere, so
    # rank 0's checkpoint describes every rank (dropout masks repeat across ranks' shards).
    runtime.seed_torch(cfg.seed)
    amp_dtype = runtime.autocast_dtype(cfg.precision, device)
    channels_last = runtime.use_channels_last(cfg.channels_last, device)
    runtime.check_compile(cfg.compile, device)
    if not quiet:
        log(experiment_to_yaml(cfg))

    with world.main_first("loading the data"):   # rank 0 downloads or fills a cache, the others then read it
        splits = load_splits(cfg.data, seed=cfg.seed, data_dir=data_dir)
    train_x = splits.train.images.to(device)
    train_y = splits.train.labels.to(device)
    model_cfg = copy.copy(cfg.model)
    # The checkpoint's weights replace any starting point (its source may be gone by now).
    model_cfg.pretrained = None if ckpt else resolve_pretrained(cfg.model.pretrained, runs_dir)
    if isinstance(cfg.model.pretrained, SourceRecipe) and model_cfg.pretrained:
        # {recipe: ...} becomes the run folder it resolved to in config.yaml (as distill.teacher does), so
        # the record names the exact source even after the recipe has newer runs
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pretrained=str(model_cfg.pretrained)))
    if ckpt:
        normalizer = Normalizer.from_state_dict(ckpt["normalizer"])
    elif cfg.data.normalize == "source":
        normalizer = source_normalizer(model_cfg.pretrained, splits.train.images)
        log(f"inputs normalized as the source's were ({normalizer.kind}: mean "
            f"{[round(v, 2) for v in normalizer.mean.tolist()]}, std {[round(v, 2) for v in normalizer.std.tolist()]}, "
            f"0..255 units)")
    else:
        normalizer = Normalizer.fit(cfg.data.normalize, splits.train.images)
    task = create_task(cfg.task)
    distributed.check_task(task, world)
    with world.main_first("building the model"):   # pretrained weights are downloaded once
        model = build_model(model_cfg, num_classes=len(splits.classes), in_chans=train_x.shape[1], log=log,
                            input_size=train_x.shape[-1])
        if not ckpt and not model_cfg.pretrained:   # a checkpoint or source brings fitted weights already
            init_from_data(model, train_x, normalizer)
    model = task.build_model(model, len(splits.classes), train_x.shape[1], train_x.shape[-1])
    teacher = None
    if cfg.distill.teacher is not None:
        if task.name != "classification":
            raise ValueError(f"distill: a teacher trains classification runs only, this one's task is {task.name!r}; "
                             f"drop distill.teacher")
        teacher_dir = resolve_pretrained(cfg.distill.teacher, runs_dir, key="distill.teacher")
        teacher = load_teacher(teacher_dir, list(splits.classes), train_x.shape[1], train_x.shape[-1], device,
                               normalizer, channels_last)
        # config.yaml names the run folder itself, so a resume (or a reader) gets this teacher even after
        # the recipe has newer runs; the caller's config object is left as it was.
        cfg = dataclasses.replace(cfg, distill=dataclasses.replace(cfg.distill, teacher=str(teacher_dir)))
        log(f"distilling from the teacher {teacher_dir} (temperature {cfg.distill.temperature}, "
            f"alpha {cfg.distill.alpha})")
    if world.enabled and cfg.sync_bn:   # batch statistics over the global batch (CUDA only)
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    check_l2_selectors(model, cfg.regularization.l2_layers)
    trainable_prefixes(model, list(cfg.freeze_after), key="freeze_after")   # a typo fails here, not epochs later
    kernels = l2_kernels(model, cfg.regularization.l2_layers)
    lookahead = Lookahead(model) if cfg.optimizer.lookahead else None
    ema = ModelEMA(model, cfg.regularization.ema) if cfg.regularization.ema else None
    eval_model = ema.module if ema else model
    steps = steps_per_epoch(train_x.shape[0], cfg.batch_size, cfg.drop_last)
    distributed.check_batch_split(cfg.batch_size, train_x.shape[0], steps, world)
    plan = plan_stages(cfg.stages, steps, cfg.epochs, cfg.optimizer)
    epochs = total_epochs(plan, steps)
    stages = stage_counts(model, plan)
    state = TrainState.from_dict(ckpt["state"]) if ckpt else TrainState()
    # The optimizer of the stage the checkpoint was written in (a boundary step switches later).
    stage = plan[ckpt["optimizer_stage"]] if ckpt else stage_at(plan, state.global_step)
    engine = Engine(cfg, model, None, ema, kernels, normalizer, Augmenter(cfg.augment), train_x, train_y,
                    torch.Generator().manual_seed(cfg.seed), torch.Generator(device=device).manual_seed(cfg.seed + 1),
                    device, amp_dtype, channels_last, steps, plan, task=task, world=world, lookahead=lookahead,
                    compile=cfg.compile, teacher=teacher)
    engine.enter_stage(stage)

    def make_run_dir() -> Path:
        # Created only once data and model are known good, so a bad start leaves no half-made run.
        # Rank 0 alone writes the run folder; the other ranks get its path.
        new_dir = run_dir
        if new_dir is None:
            new_dir = new_run_dir(runs_dir, cfg.name, seed_suffix)
            stack.enter_context(RunLock(new_dir))
            write_text_atomically(new_dir / "config.yaml", experiment_to_yaml(cfg))
            _write_model_summary(model, new_dir, input_size=train_x.shape[-1], in_chans=train_x.shape[1], log=log)
        if not (new_dir / "normalization.json").is_file():
            write_json(new_dir / "normalization.json",
                       _normalization_record(normalizer, len(splits.train),
                                             (model_cfg.pretrained or cfg.model.pretrained)
                                             if cfg.data.normalize == "source" else None))
        return new_dir

    run_dir = world.from_main(make_run_dir)
    log(f"run folder: {run_dir}")
    if steps * cfg.batch_size < train_x.shape[0]:
        log(f"note: the last batch of each epoch ({train_x.shape[0] % cfg.batch_size} image(s)) is dropped "
            f"(drop_last={cfg.drop_last}; batch norm cannot train on a batch of one)")

    generators = {"shuffle": engine.shuffle_gen, "augment": engine.augment_gen,
                  **task.generators(device, cfg.seed)}
    builtins: list[Callback] = [MetricsWriter(run_dir / "metrics.jsonl")]
    if splits.val is not None:
        builtins.append(BestWeights(run_dir / "checkpoints" / "best.safetensors", monitor="val_acc"))
    if cfg.early_stopping.patience > 0:
        es = cfg.early_stopping
        builtins.append(EarlyStopping(es.monitor, es.patience, es.min_delta))
    callbacks = builtins + user_callbacks + loggers + [ProgressPrinter(quiet=quiet, log=log)]
    if not world.is_main:
        callbacks = []   # they write files or print; rank 0's decide for all (early stopping is broadcast)

    if ckpt:
        model.load_state_dict(ckpt["model"])
        engine.optimizer.load_state_dict(ckpt["optimizer"])
        if ema:
            ema.load_state_dict(ckpt["ema"])
        if lookahead:
            lookahead.load_state_dict(ckpt.get("lookahead") or {})
        restore_rng_state(ckpt["rng"], generators)
        for cb in _stateful(callbacks):
            if cb.state_key in ckpt["callbacks"]:
                cb.load_state_dict(ckpt["callbacks"][cb.state_key])
        if state.status in ("interrupted", "diverged"):
            state.status = "running"
        log(f"resuming {run_dir} at epoch {state.epoch + 1}, step {state.step_in_epoch}/{steps}")
    # Each rank runs `python -m cnnlab train ...`; the record says how many did.
    state.commands.append(runtime.command_line() + (f"  [DDP: {world.size} ranks]" if world.enabled else ""))
    wall_before = state.wall_seconds

    def wall() -> float:
        return wall_before + time.perf_counter() - session_start

    def checkpoint() -> None:
        state.wall_seconds = wall()
        if not world.is_main:   # every rank holds the same state (the generators draw in step): one file
            return
        save_checkpoint({"state": state.to_dict(), "model": model.state_dict(),
                         "optimizer": engine.optimizer.state_dict(), "optimizer_stage": engine.stage_index,
                         "ema": ema.state_dict() if ema else None,
                         "lookahead": lookahead.state_dict() if lookahead else None, "rng": rng_state(generators),
                         "callbacks": {cb.state_key: cb.state_dict() for cb in _stateful(callbacks)},
                         "normalizer": normalizer.state_dict()},
                        run_dir / "checkpoints" / "last.pt")

    params = stages[0]["params"]   # as Keras' summary shows them at the start: 000-c's 5,130 trainable
    base_logs = {"run_dir": str(run_dir), "epochs": epochs, "steps_per_epoch": steps, "params": params,
                 "device": str(device)}
    for cb in callbacks:
        cb.on_train_begin({**base_logs, "model": eval_model})

    with _StopRequest(second_sigint_aborts=not world.enabled) as stop:
        while state.status == "running" and state.epoch < epochs:
            epoch = state.epoch
            for cb in callbacks:
                cb.on_epoch_begin(epoch, {**base_logs, "first_step": state.step_in_epoch})
            outcome = train_epoch(engine, state, callbacks, lambda: stop.requested)
            if outcome != "done":
                state.status = outcome
                if outcome == "interrupted":
                    checkpoint()
                break
            # Each rank's batch norm saw its shard only: evaluate and save the ranks' mean statistics.
            world.average_buffers(model)
            if ema:
                world.average_buffers(ema.module)
            row = _epoch_row(engine, state, splits, eval_model)
            state.end_epoch(row)
            logs = dict(row)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            # Rank 0's callbacks decide early stopping; a signal on any rank stops them all.
            stop_training, interrupted = world.any(logs.get("stop_training"), stop.requested)
            if stop_training:
                state.status = "early_stopped"
            elif interrupted:
                state.status = "interrupted"
            checkpoint()
    if state.status == "running":
        state.status = "completed"
    state.wall_seconds = wall()

    summary = run_summary(cfg, state, params, splits.classes, device, splits)
    summary["epochs"] = epochs
    if world.enabled:
        summary["distributed"] = {"world_size": world.size, "backend": world.backend,
                                  "batch_per_rank": cfg.batch_size // world.size}
    if cfg.stages:
        summary["stages"] = stages

    def stopped() -> RunResult:
        summary["status"] = state.status
        summary["message"] = _stop_message(state, run_dir, data_dir, world.size)
        if world.is_main:
            write_json(run_dir / "summary.json", summary)
        for cb in callbacks:
            cb.on_train_end({**summary, "run_dir": str(run_dir)})
        if state.status == "diverged":
            raise TrainingDiverged(summary["message"])
        log(summary["message"])
        return RunResult(run_dir, state.status, summary, splits, rank=world.rank)

    if state.status in ("interrupted", "diverged"):
        return stopped()
    try:
        summary["final"] = final_evaluation(eval_model, splits, normalizer, cfg, amp_dtype, channels_last, run_dir,
                                            engine)
    except KeyboardInterrupt:
        # Ctrl-C after the last epoch: its checkpoint is saved, so a resume goes straight to this evaluation.
        state.status = "interrupted"
        return stopped()
    summary["wall_seconds"] = round(wall(), 2)
    if world.is_main:
        save_weights(eval_model, run_dir / "model.safetensors",
                     metadata={"model": cfg.model.name, "num_classes": str(len(splits.classes))})
        write_json(run_dir / "summary.json", summary)   # written last: a summary with a final status marks a finished run
    for cb in callbacks:
        cb.on_train_end({**summary, "run_dir": str(run_dir), "data": splits})
    return RunResult(run_dir, state.status, summary, splits, rank=world.rank)


def _stateful(callbacks: list) -> list:
    """Callbacks whose state goes into checkpoints (any object with the hooks may be a callback)."""
    return [cb for cb in callbacks if getattr(cb, "state_key", None)]


def _epoch_row(engine: Engine, state: TrainState, splits, eval_model) -> dict:
    """The metrics row of the epoch just trained. Losses come as the data loss (cross-entropy) and
    as the total with the L2 penalty, which is what Keras reports as loss and val_loss."""
    sums, cfg = state.sums, engine.cfg
    seen = max(1, sums["seen"])
    row = {"epoch": state.epoch + 1, "train_loss": sums["loss_sum"] / seen, "train_acc": sums["correct"] / seen,
           "val_loss": None, "val_acc": None, "train_loss_total": sums["total_loss_sum"] / seen,
           "val_loss_total": None, "lr": engine.lr(max(state.global_step - 1, 0)),
           "stage": stage_at(engine.plan, max(state.global_step - 1, 0)).name,
           "seconds": round(sums["seconds"], 3), "images_per_sec": round(sums["seen"] / max(sums["seconds"], 1e-9), 1)}
    if splits.val is not None:
        val_loss, val_acc = engine.task.score(eval_model, splits.val, engine)
        # The penalty of the weights just scored: the EMA's when it is evaluated, not the live model's.
        kernels = (engine.l2_kernels if eval_model is engine.model
                   else matching_kernels(engine.l2_kernels, engine.model, eval_model))
        with torch.no_grad():
            penalty = l2_penalty(kernels, cfg.regularization.l2)
        row["val_loss"], row["val_acc"] = val_loss, val_acc
        row["val_loss_total"] = val_loss + (float(penalty) if penalty is not None else 0.0)
    if cfg.monitor_test and splits.test is not None:
        row["test_loss"], row["test_acc"] = engine.task.score(eval_model, splits.test, engine)
    return row


def _stop_message(state: TrainState, run_dir: Path, data_dir: Optional[str], nproc: int = 1) -> str:
    resume = f"cnnlab train --resume {shlex.quote(str(run_dir))}"
    if data_dir:
        resume += f" --data-dir {shlex.quote(str(data_dir))}"
    if nproc > 1:   # any number of processes continues the run; suggest the same
        resume += f" --nproc {nproc}"
    if state.status == "interrupted":
        return f"stopped by a signal; continue with: {resume}"
    last = run_dir / "checkpoints" / "last.pt"
    kept = (f"the last good checkpoint (end of epoch {len(state.history)}) is kept in {last}" if last.is_file()
            else "no checkpoint had been written yet")
    return (f"the loss or the gradients became NaN or infinite in epoch {state.epoch + 1}, step "
            f"{state.step_in_epoch + 1}; no weights were updated with it, and {kept}. Lower optimizer.lr, add "
            f"regularization.grad_clip, or check the data's normalization.")


def _check_runs_dir(runs_dir: Path) -> None:
    """A runs folder that cannot be written, or a full disk, is found before minutes of data loading."""
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=runs_dir):
            pass
    except OSError as err:
        raise OSError(f"cannot write run folders under {runs_dir} ({err.strerror}); choose another --runs-dir "
                      f"or fix its permissions") from None
    free = os.statvfs(runs_dir).f_bavail * os.statvfs(runs_dir).f_frsize if hasattr(os, "statvfs") else None
    if free is not None and free < MIN_FREE_BYTES:
        raise OSError(f"only {free >> 20} MiB free under {runs_dir}: a run needs room for its checkpoints; "
                      f"free some space or choose another --runs-dir")


def _normalization_record(normalizer: Normalizer, n_train: int, source=None) -> dict:
    """normalization.json; `source` (model.pretrained) when data.normalize is "source"."""
    state = normalizer.state_dict()
    fitted_on = (f"the source network's inputs (data.normalize: source, model.pretrained: {source})" if source
                 else "published ImageNet statistics" if state["kind"] == "imagenet"
                 else f"the train split only ({n_train} images)")
    return {"kind": state["kind"], "mean": state["mean"].tolist(), "std": state["std"].tolist(),
            "units": "pixel values 0..255; model input = (x - mean) / std per channel", "fitted_on": fitted_on}


def _write_model_summary(model, run_dir: Path, input_size: int, in_chans: int, log) -> None:
    """Keras-style summary beside the config; the summary's dry forward must not touch the RNG."""
    from cnnlab.models import summary

    rng = torch.get_rng_state()
    try:
        write_text_atomically(run_dir / "model_summary.txt", summary(model, input_size=input_size, in_chans=in_chans) + "\n")
    except Exception as err:  # a model the summary cannot trace still trains
        log(f"warning: no model_summary.txt: {err}")
    finally:
        torch.set_rng_state(rng)


__all__ = ["train", "RunResult", "TrainingDiverged"]
