"""One training epoch: the hot loop, with nothing in it but the steps.

Every step checks the loss and the gradient norm before the optimizer touches the weights (one
host sync per step, on every device), so a NaN or an infinity never reaches the weights and the
last checkpoint stays good.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from cnnlab.data.augment import alternating_flip
from cnnlab.train import runtime
from cnnlab.train.distributed import SINGLE, World
from cnnlab.train.optim import set_lr
from cnnlab.train.regularization import l2_penalty
from cnnlab.train.schedules import lr_at
from cnnlab.train.stages import Stage, apply_trainable, freeze_due, set_train_mode, stage_at, stage_optimizer
from cnnlab.train.state import TrainState


@dataclass
class Engine:
    """What one run trains with: built once by the loop (build.py), read by the epoch function and
    the task. It is also the task's EvalContext (normalizer, batch sizes, precision, world, data)."""

    cfg: object                      # ExperimentConfig
    model: torch.nn.Module
    task: object                     # train/task.py: what a step computes and how a split is scored
    normalizer: Callable
    augmenter: object
    train_x: torch.Tensor            # uint8 N x C x H x W on the device
    train_y: torch.Tensor
    shuffle_gen: torch.Generator     # CPU: the order of the images
    augment_gen: torch.Generator     # on the device: flips, shifts, crops
    device: torch.device
    amp_dtype: Optional[torch.dtype]
    channels_last: bool
    steps_per_epoch: int
    plan: list                       # the stages (train/stages.py); one stage without `stages`
    l2_kernels: list = field(default_factory=list)
    # After every optimizer step, in order: Lookahead's pull, then the EMA's update (each has
    # after_step(model, global_step) and its own state_dict for the checkpoint).
    step_hooks: list = field(default_factory=list)
    ema: object = None               # train/ema.py: ModelEMA; its weights are the evaluated ones
    optimizer: Optional[torch.optim.Optimizer] = None
    stage_index: int = -1            # the stage the optimizer belongs to
    world: World = SINGLE            # train/distributed.py: this rank's share, who writes, cross-rank sums
    ddp_model: Optional[torch.nn.Module] = None   # `model` in DistributedDataParallel when world.size > 1
    batch_part: tuple = (0, 0)       # this rank's rows of the current global batch: (start, global size)
    compile: bool = False            # torch.compile the training forward (config `compile`)
    flip_phase: Optional[torch.Tensor] = None   # augment.flip_mode alternating: each image's flip in epoch 0
    epoch: int = 0                   # 0-based epoch being trained (the alternating flip's parity)
    _compiled: tuple = (None, None)  # (module, its compiled form): rebuilt when DDP re-wraps the model

    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights that are validated, saved and reported: the EMA's when it is on."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def eval_batch_size(self) -> int:
        return self.cfg.eval_batch_size

    @property
    def batch_size(self) -> int:
        return self.cfg.batch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The training forward: through DDP when several ranks train (it then averages the
        gradients in backward), else the model itself; compiled when `compile` is on.
        Evaluation uses `model` directly."""
        module = self.ddp_model if self.ddp_model is not None else self.model
        if not self.compile:
            return module(x)
        if self._compiled[0] is not module:
            self._compiled = (module, runtime.compiled(module))
        return self._compiled[1](x)

    def augment(self, x: torch.Tensor, ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """This rank's rows of the global batch, augmented as one process would augment them.
        ``ids``: the rows' indices in the training set, which the alternating flip follows."""
        flip = None
        if self.flip_phase is not None:
            if ids is None:
                raise ValueError("augment.flip_mode alternating needs the batch's image indices: "
                                 "call engine.augment(x, ids)")
            flip = alternating_flip(self.flip_phase[ids], self.epoch)
        return self.augmenter(x, self.augment_gen, part=self.batch_part, flip=flip)

    def lr(self, global_step: int) -> float:
        """The schedule runs over each stage, from the stage's base LR."""
        stage = stage_at(self.plan, global_step)
        spe = self.steps_per_epoch
        stage_epochs = stage.steps // spe if stage.steps % spe == 0 else stage.steps / spe
        return lr_at(global_step - stage.start_step, spe, stage_epochs, stage.lr, self.cfg.schedule)

    def enter_stage(self, stage: Stage) -> None:
        """Freeze and unfreeze by name and build the stage's optimizer (fresh state)."""
        apply_trainable(self.model, stage.trainable)
        freeze_due(self.model, self.cfg.freeze_after, stage.start_step, self.steps_per_epoch)
        self.optimizer = stage_optimizer(self.model, self.cfg.optimizer, stage)
        self.stage_index = stage.index
        set_train_mode(self.model, self.cfg.model.frozen_bn)
        # DDP registers the parameters that train when it is built: a stage that freezes or
        # unfreezes some needs a new wrapper (every rank enters the stage at the same step).
        self.ddp_model = self.world.wrap(self.model, self.device)

    def freeze_due(self, global_step: int) -> None:
        """Apply `freeze_after` at an epoch's start. The optimizer keeps the frozen parameters: with
        no gradient it skips them (no momentum, no weight decay)."""
        if freeze_due(self.model, self.cfg.freeze_after, global_step, self.steps_per_epoch):
            self.ddp_model = self.world.wrap(self.model, self.device)   # DDP registers what trains when built


def steps_per_epoch(n_train: int, batch_size: int, drop_last: Optional[bool]) -> int:
    """Full batches, plus the partial last one unless it is dropped (always, or when it holds one image)."""
    full, rest = divmod(n_train, batch_size)
    drop = drop_last if drop_last is not None else rest == 1
    steps = full + (1 if rest and not drop else 0)
    if steps == 0:
        raise ValueError(f"{n_train} training images make no batch of batch_size={batch_size} with drop_last "
                         f"on; lower batch_size or set drop_last: false")
    return steps


def _grad_norm(params: list[torch.nn.Parameter]) -> torch.Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in grads]))


def epoch_permutation(engine: Engine, state: TrainState) -> torch.Tensor:
    """This epoch's order of the training images. A run resumed mid-epoch regenerates it from the
    generator state saved at the epoch's start, so it sees the same batches in the same order."""
    if state.step_in_epoch > 0 and state.shuffle_epoch_start is not None:
        engine.shuffle_gen.set_state(state.shuffle_epoch_start)
    state.shuffle_epoch_start = engine.shuffle_gen.get_state()
    return torch.randperm(engine.train_x.shape[0], generator=engine.shuffle_gen).to(engine.device)


class RunningSums:
    """The epoch's running sums on the device (no host sync per step), from and back to state.sums."""

    def __init__(self, state: TrainState, device: torch.device) -> None:
        self.start = dict(state.sums)
        self.loss = torch.zeros((), dtype=torch.float64, device=device) + state.sums["loss_sum"]
        self.total = torch.zeros((), dtype=torch.float64, device=device) + state.sums["total_loss_sum"]
        self.correct = torch.zeros((), dtype=torch.int64, device=device) + state.sums["correct"]
        self.seen = state.sums["seen"]
        self.t0 = time.perf_counter()

    def add(self, out, loss: torch.Tensor, total: torch.Tensor) -> None:
        n = out.count
        self.loss += loss.detach().double() * n
        self.total += total.detach().double() * n
        if out.correct is not None:
            self.correct += out.correct
        self.seen += n

    def logs(self, lr: float) -> dict:
        return {"loss_sum": self.loss, "correct": self.correct, "seen": self.seen, "lr": lr}

    def save(self, state: TrainState, world: World) -> None:
        state.sums = {"loss_sum": self.loss.item(), "total_loss_sum": self.total.item(),
                      "correct": int(self.correct.item()), "seen": self.seen,
                      "seconds": self.start["seconds"] + time.perf_counter() - self.t0}
        if world.enabled:
            # The state holds the global batch's sums (a checkpoint resumes on any number of
            # ranks): what each rank added in this session is summed over the ranks once, here.
            keys = ("loss_sum", "total_loss_sum", "correct", "seen")
            added = world.sum([float(state.sums[k] - self.start[k]) for k in keys])
            for k, v in zip(keys, added):
                state.sums[k] = self.start[k] + (int(round(v)) if k in ("correct", "seen") else v)


def optimizer_step(engine: Engine, state: TrainState, idx: torch.Tensor, lr: float):
    """One step on the global batch `idx` (this rank's rows of it): the task's loss plus the L2
    penalty, backward, the non-finite check, the optimizer and the step hooks (Lookahead, EMA).
    Returns (the task's output, its loss, the total), or None when the step diverged (not taken)."""
    cfg = engine.cfg
    optimizer = engine.optimizer
    params = [p for group in optimizer.param_groups for p in group["params"]]
    # Every rank holds the same global batch `idx` and trains on its own rows of it.
    start, stop = engine.world.rows(idx.shape[0])
    engine.batch_part = (start, idx.shape[0])
    set_lr(optimizer, lr)
    out = engine.task.step(engine, idx[start:stop])
    loss = out.loss
    penalty = l2_penalty(engine.l2_kernels, cfg.regularization.l2)
    total = loss if penalty is None else loss + penalty
    # DDP averages the ranks' gradients; a rank with more of a partial last batch weighs more,
    # so the average is the gradient of the global batch's mean loss. The L2 penalty is the
    # same on every rank, and so is its average: it is counted once.
    weight = (stop - start) * engine.world.size / idx.shape[0]
    objective = total if weight == 1 else loss * weight + (penalty if penalty is not None else 0)
    optimizer.zero_grad(set_to_none=True)
    objective.backward()
    if cfg.regularization.grad_clip:
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.regularization.grad_clip)  # the norm before clipping
    else:
        norm = _grad_norm(params)
    # One sync: a non-finite loss, or non-finite gradients from a finite loss, stop the run here.
    # Several ranks agree on it (one more sync), so that no rank steps alone.
    nonfinite = not math.isfinite((total.detach().float() + norm.to(total.device).float()).item())
    if engine.world.any(nonfinite)[0]:
        return None
    optimizer.step()
    for hook in engine.step_hooks:   # Lookahead, EMA
        hook.after_step(engine.model, state.global_step + 1)
    return out, loss, total


def train_epoch(engine: Engine, state: TrainState, callbacks: list, should_stop: Callable[[], bool]) -> str:
    """Train from state.step_in_epoch to the epoch's end; returns "done", "interrupted" or "diverged".

    ``state`` is updated after every step, so that whatever this returns, it describes exactly
    the weights that are in the model (a diverged step is not taken).
    """
    cfg = engine.cfg
    perm = epoch_permutation(engine, state)
    engine.epoch = state.epoch
    sums = RunningSums(state, engine.device)
    engine.freeze_due(state.global_step)
    set_train_mode(engine.model, cfg.model.frozen_bn)
    # A plan that ends mid-epoch (a last stage of `steps: 50000` at 352 steps an epoch) ends there:
    # its last epoch is a partial one, so the run takes exactly the steps it was asked for.
    end = min(engine.steps_per_epoch, state.step_in_epoch + max(0, engine.plan[-1].end_step - state.global_step))
    outcome = "done"
    for step in range(state.step_in_epoch, end):
        stage = stage_at(engine.plan, state.global_step)
        if stage.index != engine.stage_index:
            engine.enter_stage(stage)
        lr = engine.lr(state.global_step)
        taken = optimizer_step(engine, state, perm[step * cfg.batch_size:(step + 1) * cfg.batch_size], lr)
        if taken is None:
            outcome = "diverged"
            break
        state.global_step += 1
        state.step_in_epoch = step + 1
        sums.add(*taken)
        for cb in callbacks:
            cb.on_batch_end(step, sums.logs(lr))
        # A signal reaches one rank (or some): all stop after the same step.
        if engine.world.any(should_stop())[0] and state.step_in_epoch < end:
            outcome = "interrupted"
            break
    sums.save(state, engine.world)
    return outcome
