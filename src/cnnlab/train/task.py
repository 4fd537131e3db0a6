"""What one training step computes, and how a split is scored: the loop's only task-specific part.

The loop (loop.py, epoch.py) owns order, stages, optimizers, checkpoints, NaN checks and
callbacks; a Task turns a batch of training-image indices into a loss, and a model plus a split
into (loss, accuracy). Classification is the default task. Other tasks (a siamese twin trained on
pairs, report 002-c) live in their own packages above this layer and register here:

    register_task("siamese", SiameseTask)      # in cnnlab/siamese/__init__.py

An experiment names its task with `task: {name: siamese, ...options}`; the options go to the
task's constructor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from cnnlab.train import runtime
from cnnlab.train.losses import classification_loss, correct_count, distillation_loss
from cnnlab.train.predict import evaluate


@dataclass
class StepOutput:
    loss: torch.Tensor            # the data loss of the batch (scalar, with grad)
    count: int                    # how many examples it averaged over
    correct: Optional[torch.Tensor] = None   # examples right (an int tensor), when accuracy means something


class Task:
    """One kind of training. Stateless across steps except through `generators` (checkpointed)."""

    name = "task"
    # True when step() on each rank's rows of a batch, with DDP averaging the gradients, trains
    # as step() on the whole batch would (a per-example mean loss); only such tasks run on several ranks.
    shards_batches = False

    def build_model(self, model: nn.Module, num_classes: int, in_chans: int, input_size: int) -> nn.Module:
        """The network that trains (default: the experiment's model as built)."""
        return model

    def generators(self, device: torch.device, seed: int) -> dict[str, torch.Generator]:
        """Extra random streams the task draws from (saved in every checkpoint)."""
        return {}

    def step(self, engine, idx: torch.Tensor) -> StepOutput:
        raise NotImplementedError

    def score(self, model: nn.Module, ds, engine) -> tuple[float, float]:
        """(loss, accuracy) of `model` on the dataset `ds` (eval mode), for the metrics row."""
        raise NotImplementedError

    def final_outputs(self, model: nn.Module, ds, engine) -> Optional[torch.Tensor]:
        """Probabilities N x K to save as predictions/<split>.npz (None: nothing to save)."""
        return None


class ClassificationTask(Task):
    """Cross-entropy (or binary cross-entropy for a 1-logit head) on augmented batches; with a
    teacher (config `distill`), mixed with the KL divergence from the teacher's soft predictions."""

    name = "classification"
    shards_batches = True

    def step(self, engine, idx: torch.Tensor) -> StepOutput:
        x = engine.normalizer(engine.train_x[idx])
        y = engine.train_y[idx]
        if engine.augmenter.enabled:
            x = engine.augment(x)
        if engine.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with runtime.autocast(engine.device, engine.amp_dtype):
            logits = engine.forward(x)
            teacher_logits = engine.teacher(x) if engine.teacher is not None else None
        smoothing = engine.cfg.regularization.label_smoothing
        if teacher_logits is None:
            loss = classification_loss(logits, y, smoothing)
        else:
            distill = engine.cfg.distill
            loss = distillation_loss(logits, teacher_logits, y, distill.temperature, distill.alpha, smoothing)
        return StepOutput(loss, y.shape[0], correct_count(logits.detach(), y))

    def score(self, model: nn.Module, ds, engine) -> tuple[float, float]:
        res = evaluate(model, ds.images, ds.labels, engine.normalizer, engine.cfg.eval_batch_size, engine.amp_dtype,
                       engine.channels_last, world=engine.world)
        return res.loss, res.accuracy


_TASKS: dict[str, Callable[..., Task]] = {"classification": ClassificationTask}


def register_task(name: str, factory: Callable[..., Task]) -> None:
    if name in _TASKS and _TASKS[name] is not factory:
        raise ValueError(f"task {name!r} is already registered")
    _TASKS[name] = factory


def create_task(settings: dict) -> Task:
    """The task named by `task: {name: ..., options}` (classification when empty)."""
    options = dict(settings or {})
    name = options.pop("name", "classification")
    if name not in _TASKS:
        hint = " (import cnnlab.siamese first, or train through cnnlab.run_experiment / the CLI)" if name == "siamese" else ""
        raise ValueError(f"task.name={name!r} is not a registered task{hint}; known: {', '.join(sorted(_TASKS))}")
    try:
        return _TASKS[name](**options)
    except TypeError as err:
        raise ValueError(f"task: bad option for {name} ({err})") from None
