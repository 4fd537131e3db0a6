"""Setting a run up: from a config (and a checkpoint, when resuming) to a `Run` ready to fit.

    runtime -> data and inputs -> model (task, teacher) -> engine -> run folder -> callbacks

Each step is a small function in the order the run needs them; the order is part of the
contract (every random draw of set-up happens in it, so a run is reproducible bitwise).
"""

from __future__ import annotations

import copy
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from cnnlab.atomic import write_text_atomically
from cnnlab.data import Augmenter, Normalizer, load_splits
from cnnlab.data.augment import flip_phase
from cnnlab.train import distributed, runtime
from cnnlab.train.callbacks import BestWeights, Callback, EarlyStopping, MetricsWriter
from cnnlab.train.components import CallbackStates, Checkpointer, RandomStreams, Value
from cnnlab.train.ema import ModelEMA
from cnnlab.train.epoch import Engine, steps_per_epoch
from cnnlab.train.experiment import ExperimentConfig, experiment_to_yaml
from cnnlab.train.finish import RunRecord
from cnnlab.train.lookahead import Lookahead
from cnnlab.train.loggers import loggers_from_settings
from cnnlab.train.progress import ProgressPrinter
from cnnlab.train.regularization import check_l2_selectors, l2_kernels
from cnnlab.train.rundir import RunLock, new_run_dir, normalization_record, write_json, write_model_summary
from cnnlab.train.setup import build_model, init_from_data, source_normalizer
from cnnlab.train.stages import plan_stages, stage_at, stage_counts, total_epochs, trainable_prefixes
from cnnlab.train.state import TrainState


@dataclass
class Run:
    """One run being trained: what set-up built, what fit() and finish() use."""

    cfg: ExperimentConfig
    world: distributed.World
    engine: Engine
    splits: object                   # DataSplits
    state: TrainState
    run_dir: Path
    callbacks: list
    checkpointer: Checkpointer
    epochs: int
    stages: list                     # trainable counts per stage (summary.json)
    log: Callable[[str], None]
    data_dir: Optional[str] = None
    session_start: float = field(default_factory=time.perf_counter)
    wall_before: float = 0.0         # wall seconds of the run's earlier sessions
    summary: dict = field(default_factory=dict)   # summary.json, once finish() wrote it

    def wall(self) -> float:
        return self.wall_before + time.perf_counter() - self.session_start

    def checkpoint(self) -> None:
        """checkpoints/last.pt, from rank 0 (every rank holds the same state: the generators draw in step)."""
        self.state.wall_seconds = self.wall()
        if self.world.is_main:
            self.checkpointer.save()


def set_up(cfg: ExperimentConfig, run_dir: Optional[Path], ckpt: Optional[dict], stack: ExitStack,
           world: distributed.World, *, runs_dir: Path, data_dir, quiet: bool, seed_suffix, user_callbacks: list,
           task_factory, log) -> Run:
    """Everything a run needs before its first step, the run folder included; `ckpt` restores nothing
    yet (restore() does) but decides what is fitted afresh (normalizer, data-dependent init)."""
    session_start = time.perf_counter()
    loggers = loggers_from_settings(cfg.logging)   # imports their packages: fails before a run folder exists
    device, amp_dtype, channels_last = _runtime(cfg, stack, world)
    if not quiet:
        log(experiment_to_yaml(cfg))
    with world.main_first("loading the data"):   # rank 0 downloads or fills a cache, the others then read it
        splits = load_splits(cfg.data, seed=cfg.seed, data_dir=data_dir)
    train_x, train_y = splits.train.images.to(device), splits.train.labels.to(device)
    normalizer = _normalizer(cfg, ckpt, splits, log)
    task = task_factory(cfg)
    distributed.check_task(task, world)
    model = _model(cfg, ckpt, task, splits, train_x, normalizer, world, device, channels_last, log)
    engine = _engine(cfg, model, task, normalizer, train_x, train_y, device, amp_dtype, channels_last, world)
    task.bind(engine, list(splits.classes))   # a teacher checks and maps the student's inputs here
    plan, steps = engine.plan, engine.steps_per_epoch
    stages = stage_counts(model, plan)
    if ckpt is None:
        engine.enter_stage(stage_at(plan, 0))   # a resume enters the checkpoint's stage in restore()
    run_dir = world.from_main(lambda: _run_folder(cfg, run_dir, stack, runs_dir, seed_suffix, model, train_x,
                                                  normalizer, len(splits.train), log))
    log(f"run folder: {run_dir}")
    if amp_dtype == torch.bfloat16 and device.type == "cpu" and runtime.cpu_has_native_bf16() is False:
        log("note: precision=bf16 on a CPU without bf16 instructions (no avx512_bf16/amx_bf16 in /proc/cpuinfo): "
            "autocast emulates them and trains slower than fp32 here; set precision=fp32 for speed")
    if steps * cfg.batch_size < train_x.shape[0]:
        log(f"note: the last batch of each epoch ({train_x.shape[0] % cfg.batch_size} image(s)) is dropped "
            f"(drop_last={cfg.drop_last}; batch norm cannot train on a batch of one)")
    callbacks = _callbacks(cfg, run_dir, splits, engine, user_callbacks + loggers, quiet, log, world)
    state = TrainState()
    checkpointer = _checkpointer(run_dir, state, engine, task, callbacks, normalizer)
    return Run(cfg, world, engine, splits, state, run_dir, callbacks, checkpointer, total_epochs(plan, steps),
               stages, log, data_dir=data_dir, session_start=session_start)


def _runtime(cfg: ExperimentConfig, stack: ExitStack, world: distributed.World):
    """Threads, determinism and memory for the run (restored when it ends), the device, precision
    and layout; the global seed (the same on every rank: the same weights, order and draws)."""
    stack.enter_context(runtime.run_settings(cfg.threads, cfg.deterministic))
    if cfg.reuse_memory:
        runtime.reuse_freed_memory()
    device = runtime.resolve_device(cfg.device)
    if world.enabled and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())   # this rank's GPU (LOCAL_RANK)
    distributed.check_sync_bn(cfg.sync_bn, device, world)
    runtime.seed_torch(cfg.seed)
    amp_dtype = runtime.autocast_dtype(cfg.precision, device)
    channels_last = runtime.use_channels_last(cfg.channels_last, device)
    runtime.check_compile(cfg.compile, device)
    return device, amp_dtype, channels_last


def _normalizer(cfg: ExperimentConfig, ckpt: Optional[dict], splits, log) -> Normalizer:
    """The checkpoint's statistics on a resume; else the source run's or fitted on the train split."""
    if ckpt:
        return Normalizer.from_state_dict(ckpt["normalizer"])
    if cfg.data.normalize == "source":
        normalizer = source_normalizer(cfg.model.pretrained, splits.train.images)
        log(f"inputs normalized as the source's were ({normalizer.kind}: mean "
            f"{[round(v, 2) for v in normalizer.mean.tolist()]}, std {[round(v, 2) for v in normalizer.std.tolist()]}, "
            f"0..255 units)")
        return normalizer
    return Normalizer.fit(cfg.data.normalize, splits.train.images)


def _model(cfg, ckpt, task, splits, train_x, normalizer, world, device, channels_last, log) -> torch.nn.Module:
    """The experiment's network, through the task, on the device. A checkpoint's weights replace any
    starting point (its source may be gone by now), so a resume builds it without one."""
    model_cfg = copy.copy(cfg.model)
    model_cfg.pretrained = None if ckpt else cfg.model.pretrained
    with world.main_first("building the model"):   # pretrained weights are downloaded once
        model = build_model(model_cfg, num_classes=len(splits.classes), in_chans=train_x.shape[1], log=log,
                            input_size=train_x.shape[-1])
        if not ckpt and not model_cfg.pretrained:   # a checkpoint or source brings fitted weights already
            init_from_data(model, train_x, normalizer)
    model = task.build_model(model, len(splits.classes), train_x.shape[1], train_x.shape[-1])
    if world.enabled and cfg.sync_bn:   # batch statistics over the global batch (CUDA only)
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    check_l2_selectors(model, cfg.regularization.l2_layers)
    trainable_prefixes(model, list(cfg.freeze_after), key="freeze_after")   # a typo fails here, not epochs later
    return model


def _engine(cfg, model, task, normalizer, train_x, train_y, device, amp_dtype, channels_last, world) -> Engine:
    steps = steps_per_epoch(train_x.shape[0], cfg.batch_size, cfg.drop_last)
    distributed.check_batch_split(cfg.batch_size, train_x.shape[0], steps, world)
    plan = plan_stages(cfg.stages, steps, cfg.epochs, cfg.optimizer)
    ema = ModelEMA(model, cfg.regularization.ema) if cfg.regularization.ema else None
    lookahead = Lookahead(model, cfg.optimizer.lookahead, plan[-1].end_step) if cfg.optimizer.lookahead else None
    return Engine(cfg=cfg, model=model, task=task, normalizer=normalizer, augmenter=Augmenter(cfg.augment, normalizer),
                  train_x=train_x, train_y=train_y, shuffle_gen=torch.Generator().manual_seed(cfg.seed),
                  augment_gen=torch.Generator(device=device).manual_seed(cfg.seed + 1), device=device,
                  amp_dtype=amp_dtype, channels_last=channels_last, steps_per_epoch=steps, plan=plan,
                  l2_kernels=l2_kernels(model, cfg.regularization.l2_layers),
                  step_hooks=[h for h in (lookahead, ema) if h is not None], ema=ema, world=world,
                  compile=cfg.compile, flip_phase=_flip_phase(cfg, train_x))


def _flip_phase(cfg, train_x: torch.Tensor) -> Optional[torch.Tensor]:
    """augment.flip_mode alternating: every image's flip in epoch 0, drawn from the seed (its own
    stream, so the shuffle and the other augmentations draw as they would without it)."""
    if cfg.augment.flip_mode != "alternating":   # AugmentConfig requires hflip with it
        return None
    return flip_phase(train_x.shape[0], cfg.seed + 2).to(train_x.device)


def _run_folder(cfg, run_dir, stack, runs_dir, seed_suffix, model, train_x, normalizer, n_train, log) -> Path:
    """On rank 0: a new run folder (config.yaml, model_summary.txt), or the resumed one; and its
    normalization.json. Made only once data and model are known good, so a bad start leaves none."""
    if run_dir is None:
        run_dir = new_run_dir(runs_dir, cfg.name, seed_suffix)
        stack.enter_context(RunLock(run_dir))
        write_text_atomically(run_dir / "config.yaml", experiment_to_yaml(cfg))
        write_model_summary(model, run_dir, input_size=train_x.shape[-1], in_chans=train_x.shape[1], log=log)
    if not (run_dir / "normalization.json").is_file():
        source = cfg.model.pretrained if cfg.data.normalize == "source" else None
        write_json(run_dir / "normalization.json", normalization_record(normalizer, n_train, source))
    return run_dir


def _callbacks(cfg, run_dir: Path, splits, engine: Engine, extra: list, quiet: bool, log, world) -> list[Callback]:
    """The run's callbacks: its record (summary, weights) and metrics first, then best weights and
    early stopping, the caller's and the loggers, the progress printer last. Only rank 0 has any:
    they write files or print, and its decisions (early stopping) are broadcast."""
    if not world.is_main:
        return []
    callbacks: list[Callback] = [RunRecord(run_dir), MetricsWriter(run_dir / "metrics.jsonl")]
    if splits.val is not None:
        callbacks.append(BestWeights(run_dir / "checkpoints" / "best.safetensors", monitor="val_acc"))
    if cfg.early_stopping.patience > 0:
        es = cfg.early_stopping
        callbacks.append(EarlyStopping(es.monitor, es.patience, es.min_delta))
    return callbacks + extra + [ProgressPrinter(quiet=quiet, log=log)]


def _checkpointer(run_dir: Path, state: TrainState, engine: Engine, task, callbacks: list,
                  normalizer: Normalizer) -> Checkpointer:
    """Every stateful part under its key, in the order a resume restores them: the position first,
    then the stage (which builds that stage's optimizer), the weights, the optimizer's state, the
    weight averages, the random streams and the callbacks."""
    lookahead = next((h for h in engine.step_hooks if isinstance(h, Lookahead)), None)
    generators = {"shuffle": engine.shuffle_gen, "augment": engine.augment_gen,
                  **engine.task.generators(engine.device, engine.cfg.seed)}
    parts = {
        "state": state,
        "optimizer_stage": Value(lambda: engine.stage_index, lambda i: engine.enter_stage(engine.plan[i])),
        "model": engine.model,
        "optimizer": Value(lambda: engine.optimizer.state_dict(), lambda s: engine.optimizer.load_state_dict(s)),
        "ema": engine.ema,
        "lookahead": lookahead,
        "rng": RandomStreams(generators),
        "callbacks": CallbackStates(callbacks),
        # Read at set-up (it shapes the data-dependent init and the teacher's input map): saved only.
        "normalizer": Value(normalizer.state_dict, lambda s: None),
    }
    return Checkpointer(run_dir / "checkpoints" / "last.pt", parts)


__all__ = ["Run", "set_up"]
