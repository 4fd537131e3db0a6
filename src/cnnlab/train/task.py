"""The task contract: what a training step computes, how a split is scored, what a finished run
predicts, and which commands mean something for it. The loop's only task-specific part.

The loop (loop.py, fit.py, epoch.py) owns order, stages, optimizers, checkpoints, NaN checks and
callbacks; a Task owns

- ``build_model``: the network that trains, from the experiment's model (a siamese twin wraps it);
- ``step``: a batch of training-image indices -> a loss (and the examples it got right);
- ``score``: a model and a split -> (loss, accuracy), the numbers of a metrics row;
- ``evaluate``: the final numbers of every split, with test-time augmentation where it applies,
  and the predictions to save;
- ``predict``: class probabilities of new images, for a finished run's handle;
- ``unsupported``: a one-line message for a command that is not meaningful for the task.

Classification is defined here; every task a run can name is listed in ``cnnlab.tasks``, the one
table (it sits above this layer and the siamese package, so the loop is handed its task).
Distillation is an option of classification (``with_teacher``), not a field the loop carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from cnnlab.train import runtime
from cnnlab.train.distributed import SINGLE
from cnnlab.train.losses import classification_loss, correct_count, distillation_loss, probabilities
from cnnlab.train.predict import evaluate, predict_logits, tta_probabilities

SPLITS = ("train", "val", "test")

# Above this many stored probabilities (images x classes) the train-split predictions are not
# saved: 5e6 float32 = 20 MB, enough for CIFAR-100's 50,000 x 100.
MAX_SAVED_PROBS = 5_000_000


class NotMeaningful(ValueError):
    """A command asked a run for something its task does not have (e.g. class probabilities of a
    siamese twin); the message, one line, is the task's own."""


@dataclass
class StepOutput:
    loss: torch.Tensor            # the data loss of the batch (scalar, with grad)
    count: int                    # how many examples it averaged over
    correct: Optional[torch.Tensor] = None   # examples right (an int tensor), when accuracy means something


@dataclass
class EvalContext:
    """What scoring or predicting needs besides the model. The loop's Engine has the same
    attributes; a finished run's handle builds one from its config and data."""

    normalizer: Any                      # uint8 batch -> model input
    eval_batch_size: int = 256
    batch_size: int = 128                # a training batch (the siamese loss is averaged over such batches)
    amp_dtype: Optional[torch.dtype] = None
    channels_last: bool = False
    world: Any = SINGLE                  # train/distributed.py: several ranks share the work
    train_x: Optional[torch.Tensor] = None   # uint8 training images, for tasks that score against them
    train_y: Optional[torch.Tensor] = None


@dataclass
class Evaluation:
    """The final evaluation of a run: summary.json's `final` numbers and the predictions to save."""

    numbers: dict = field(default_factory=dict)          # <split>_loss, <split>_acc, test_tta_acc, ...
    predictions: dict = field(default_factory=dict)      # file stem (test, test_tta) -> (probs N x K, dataset)


def scored_split(splits, name: str, evaluate_train: bool = True):
    """The split a final evaluation scores, or None: absent, empty, or train with evaluate_train off."""
    ds = getattr(splits, name, None)
    if ds is None or len(ds) == 0 or (name == "train" and not evaluate_train):
        return None
    return ds


class Task:
    """One kind of training. Stateless across steps except through `generators` (checkpointed)."""

    name = "task"
    # True when step() on each rank's rows of a batch, with DDP averaging the gradients, trains
    # as step() on the whole batch would (a per-example mean loss); only such tasks run on several ranks.
    shards_batches = False
    # What the loss columns of the metrics and summary measure (the report's axis label).
    loss_name = "loss"

    def build_model(self, model: nn.Module, num_classes: int, in_chans: int, input_size: int) -> nn.Module:
        """The network that trains (default: the experiment's model as built)."""
        return model

    def generators(self, device: torch.device, seed: int) -> dict[str, torch.Generator]:
        """Extra random streams the task draws from (saved in every checkpoint)."""
        return {}

    def bind(self, engine, classes: list[str]) -> None:
        """Called once the loop has its model, normalizer and device, before the first step."""

    def with_teacher(self, teacher, temperature: float, alpha: float) -> "Task":
        """This task, learning also from a teacher's predictions (config `distill`)."""
        raise NotMeaningful(f"distill: the {self.name} task cannot learn from a teacher; drop distill.teacher")

    def step(self, engine, idx: torch.Tensor) -> StepOutput:
        raise NotImplementedError

    def score(self, model: nn.Module, ds, ctx) -> tuple[float, float]:
        """(loss, accuracy) of `model` on the dataset `ds` (eval mode), for the metrics row."""
        raise NotImplementedError

    def evaluate_split(self, model: nn.Module, ds, ctx, name: str) -> tuple[float, float, Optional[np.ndarray]]:
        """(loss, accuracy, probabilities N x K to save as predictions/<name>.npz or None) of one
        split in the final evaluation; by default `score`, with nothing to save."""
        return (*self.score(model, ds, ctx), None)

    def evaluate(self, model: nn.Module, splits, ctx, *, evaluate_train: bool = True, tta=None) -> Evaluation:
        """Every split through `evaluate_split`; a task with test-time views adds them."""
        result = Evaluation()
        for name in SPLITS:
            ds = scored_split(splits, name, evaluate_train)
            if ds is None:
                result.numbers[f"{name}_loss"] = result.numbers[f"{name}_acc"] = None
                continue
            loss, acc, probs = self.evaluate_split(model, ds, ctx, name)
            result.numbers[f"{name}_loss"], result.numbers[f"{name}_acc"] = loss, acc
            if probs is not None:
                result.predictions[name] = (probs, ds)
        return result

    def predict(self, model: nn.Module, images: torch.Tensor, ctx, tta=False) -> np.ndarray:
        """Class probabilities, float32 N x K, of uint8 images N x C x H x W."""
        raise NotMeaningful(self.unsupported("predict") or f"the {self.name} task has no class probabilities")

    def unsupported(self, command: str) -> Optional[str]:
        """A one-line message when `command` (predict, export, explain, probe, eval, report,
        compare, source, teacher, robust) means nothing for this task's runs; None when it applies."""
        return None

    def require(self, command: str) -> None:
        """Raise NotMeaningful with the task's message when `command` does not apply."""
        message = self.unsupported(command)
        if message:
            raise NotMeaningful(message)


class ClassificationTask(Task):
    """Cross-entropy (or binary cross-entropy for a 1-logit head) on augmented batches; with a
    teacher (`with_teacher`, config `distill`), mixed with the KL divergence from the teacher's
    soft predictions."""

    name = "classification"
    shards_batches = True
    loss_name = "cross-entropy (nats)"

    def __init__(self) -> None:
        self.teacher = None              # train/teacher.py: Teacher, bound to the student's inputs in bind()
        self._teacher_source = None      # () -> Teacher, called in bind()
        self.temperature, self.alpha = 4.0, 0.9

    def with_teacher(self, teacher, temperature: float, alpha: float) -> "ClassificationTask":
        """`teacher`: a Teacher, or a function that builds one (called when training starts, after
        the student's own set-up, so the student's random draws do not depend on the teacher)."""
        self._teacher_source = teacher if callable(teacher) and not hasattr(teacher, "bind") else (lambda: teacher)
        self.temperature, self.alpha = float(temperature), float(alpha)
        return self

    def bind(self, engine, classes: list[str]) -> None:
        if self._teacher_source is not None:
            self.teacher = self._teacher_source()
            self.teacher.bind(engine.normalizer, engine.device, engine.channels_last, classes,
                              int(engine.train_x.shape[-1]))

    def step(self, engine, idx: torch.Tensor) -> StepOutput:
        x = engine.normalizer(engine.train_x[idx])
        y = engine.train_y[idx]
        if engine.augmenter.enabled:
            x = engine.augment(x, idx)
        if engine.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with runtime.autocast(engine.device, engine.amp_dtype):
            logits = engine.forward(x)
            teacher_logits = self.teacher(x) if self.teacher is not None else None
        smoothing = engine.cfg.regularization.label_smoothing
        if teacher_logits is None:
            loss = classification_loss(logits, y, smoothing)
        else:
            loss = distillation_loss(logits, teacher_logits, y, self.temperature, self.alpha, smoothing)
        return StepOutput(loss, y.shape[0], correct_count(logits.detach(), y))

    def score(self, model: nn.Module, ds, ctx) -> tuple[float, float]:
        res = evaluate(model, ds.images, ds.labels, ctx.normalizer, ctx.eval_batch_size, ctx.amp_dtype,
                       ctx.channels_last, world=ctx.world)
        return res.loss, res.accuracy

    def evaluate_split(self, model: nn.Module, ds, ctx, name: str) -> tuple[float, float, Optional[np.ndarray]]:
        res = evaluate(model, ds.images, ds.labels, ctx.normalizer, ctx.eval_batch_size, ctx.amp_dtype,
                       ctx.channels_last, ctx.world)
        keep = name != "train" or res.logits.numel() <= MAX_SAVED_PROBS
        return res.loss, res.accuracy, probabilities(res.logits).numpy() if keep else None

    def evaluate(self, model: nn.Module, splits, ctx, *, evaluate_train: bool = True, tta=None) -> Evaluation:
        """Loss, accuracy and probabilities of every split, and with `tta` a test row scored on the
        mean probabilities of the test-time views (predictions/test_tta.npz)."""
        result = super().evaluate(model, splits, ctx, evaluate_train=evaluate_train)
        test = scored_split(splits, "test")
        if tta and test is not None:
            probs = tta_probabilities(model, test.images, ctx.normalizer, ctx.eval_batch_size, tta, ctx.amp_dtype,
                                      ctx.channels_last, ctx.world)
            result.numbers["test_tta_acc"] = float((_predicted(probs) == test.labels.numpy()).mean())
            result.predictions["test_tta"] = (probs, test)
        return result

    def predict(self, model: nn.Module, images: torch.Tensor, ctx, tta=False) -> np.ndarray:
        """Class probabilities, float32 N x K (a one-logit sigmoid head gives [1 - p, p])."""
        if tta:
            probs = torch.from_numpy(tta_probabilities(model, images, ctx.normalizer, ctx.eval_batch_size, tta,
                                                       ctx.amp_dtype))
        else:
            probs = probabilities(predict_logits(model, images, ctx.normalizer, ctx.eval_batch_size, ctx.amp_dtype))
        if probs.shape[1] == 1:  # sigmoid head: the probability of class 1
            probs = torch.cat([1 - probs, probs], dim=1)
        return probs.numpy().astype(np.float32)


def _predicted(probs: np.ndarray) -> np.ndarray:
    """Predicted labels of probabilities N x K (N x 1: a sigmoid head's probability of class 1)."""
    return (probs[:, 0] > 0.5).astype(np.int64) if probs.shape[1] == 1 else probs.argmax(1)


def classification_only(settings: Optional[dict]) -> Task:
    """The task factory `cnnlab.train.train` uses when none is given: classification, with no
    options. Other tasks are in cnnlab.tasks (cnnlab.run_experiment and the CLI use it)."""
    options = dict(settings or {})
    name = options.pop("name", ClassificationTask.name)
    if name != ClassificationTask.name or options:
        raise ValueError(f"task: {settings!r}: cnnlab.train.train runs the default task by itself; train other "
                         f"tasks with cnnlab.run_experiment, or pass task_factory=cnnlab.tasks.create_task")
    return ClassificationTask()


__all__ = ["ClassificationTask", "EvalContext", "Evaluation", "NotMeaningful", "StepOutput", "Task",
           "classification_only", "scored_split"]
