"""Config sections of the training engine: optimizer, LR schedule, regularization, stopping."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "piecewise", "inverse_time", "cosine", "onecycle")
MONITORS = ("val_loss", "val_acc", "train_loss", "train_acc")


def _check_choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{key}={value!r} is not allowed; choose one of {', '.join(allowed)}")


@dataclass
class LookaheadConfig:
    """Lookahead (Zhang et al. 2019) as airbench uses it: every `every` optimizer steps the weights
    (and float buffers) are pulled back toward a slow copy, which then takes their place. The slow
    copy's share after step t of T is decay * (t / T) ** ramp, so early steps are plain SGD and late
    ones average; the last step of the run ends on the slow weights (share 1)."""

    every: int = 5                  # optimizer steps between pulls
    decay: float = 0.95 ** 5        # the slow copy's share at the end of the run (airbench: 0.95 ** 5)
    ramp: float = 3.0               # power of the run's progress that scales the share

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"optimizer.lookahead.every must be >= 1, got {self.every}")
        if not 0 <= self.decay < 1:
            raise ValueError(f"optimizer.lookahead.decay must be in [0, 1), got {self.decay}")
        if self.ramp < 0:
            raise ValueError(f"optimizer.lookahead.ramp must be >= 0, got {self.ramp}")


@dataclass
class OptimizerConfig:
    name: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0           # sgd, rmsprop
    nesterov: bool = False          # sgd
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adam, adamw
    rho: float = 0.9                # rmsprop smoothing (Keras' rho=0.9; PyTorch calls it alpha, default .99)
    eps: float = 1e-7               # Keras' default epsilon, so Keras recipes behave as written
    # Decoupled for adamw (AdamW paper); for sgd/adam/rmsprop PyTorch adds wd*w to the gradient.
    # For the Keras-style L2 penalty added to the loss use regularization.l2.
    weight_decay: float = 0.0
    lookahead: Optional[LookaheadConfig] = None   # {every: 5}: airbench's Lookahead over any optimizer
    # LR multiplier for the normalization layers' parameters (batch/group/layer norm scales and
    # shifts); airbench trains its BN biases at 64x. Their weight decay is divided by it, so the
    # shrink per step (lr x weight_decay) stays that of the other weights.
    norm_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        _check_choice("optimizer.name", self.name, OPTIMIZERS)
        if self.lr <= 0:
            raise ValueError(f"optimizer.lr must be > 0, got {self.lr}")
        if len(self.betas) != 2:
            raise ValueError(f"optimizer.betas needs two numbers, got {self.betas}")
        if self.norm_lr_scale <= 0:
            raise ValueError(f"optimizer.norm_lr_scale must be > 0 (1 = the scheduled LR), got {self.norm_lr_scale}")
        if self.nesterov and (self.name != "sgd" or self.momentum <= 0):
            raise ValueError("optimizer.nesterov needs name: sgd and momentum > 0")


@dataclass
class ScheduleConfig:
    """Learning rate as a pure function of the optimizer step (see schedules.lr_at)."""

    name: str = "constant"
    warmup_epochs: float = 0.0      # linear warm-up from ~0 to the scheduled LR over this many epochs
    step_size: int = 30             # step: multiply by gamma every step_size epochs
    gamma: float = 0.1
    milestones: list[int] = field(default_factory=list)   # piecewise: 0-based epochs where the LR changes
    values: list[float] = field(default_factory=list)     # piecewise: len(milestones)+1 learning rates
    decay: float = 0.0              # inverse_time: lr / (1 + decay * step), Keras' `decay=` argument (per step)
    min_lr: float = 0.0             # cosine: floor
    max_lr: Optional[float] = None  # onecycle: peak (default optimizer.lr)
    pct_start: float = 0.3          # onecycle: fraction of steps spent rising
    div_factor: float = 25.0        # onecycle: start = peak / div_factor
    final_div_factor: float = 1e4   # onecycle: end = start / final_div_factor
    anneal: str = "cos"             # onecycle: "cos" (half-cosine ramps) | "linear" (airbench's straight ramps)

    def __post_init__(self) -> None:
        _check_choice("schedule.name", self.name, SCHEDULES)
        _check_choice("schedule.anneal", self.anneal, ("cos", "linear"))
        if self.name == "piecewise" and len(self.values) != len(self.milestones) + 1:
            raise ValueError(
                f"schedule piecewise needs len(values) == len(milestones) + 1, "
                f"got {len(self.values)} values for {len(self.milestones)} milestones"
            )
        if sorted(self.milestones) != list(self.milestones):
            raise ValueError(f"schedule.milestones must be increasing, got {self.milestones}")
        if self.warmup_epochs < 0 or self.decay < 0 or self.step_size < 1:
            raise ValueError("schedule.warmup_epochs and decay must be >= 0, step_size >= 1")
        if not 0 < self.pct_start < 1:
            raise ValueError(f"schedule.pct_start must be in (0, 1), got {self.pct_start}")


@dataclass
class RegularizationConfig:
    # Keras-style penalty added to the loss: l2 * sum(w**2) over the kernels of the chosen layers
    # (biases and batch-norm excluded, as Keras' kernel_regularizer does).
    l2: float = 0.0
    # Which kernels: "conv", "dense" (Linear), "all", or module-name prefixes such as "fc1".
    l2_layers: list[str] = field(default_factory=lambda: ["conv", "dense"])
    label_smoothing: float = 0.0
    grad_clip: Optional[float] = None   # max global grad norm; null = off
    ema: Optional[float] = None         # EMA decay of weights per step (e.g. 0.999); evaluation uses the EMA

    def __post_init__(self) -> None:
        if self.l2 < 0:
            raise ValueError(f"regularization.l2 must be >= 0, got {self.l2}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"regularization.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.ema is not None and not 0 < self.ema < 1:
            raise ValueError(f"regularization.ema must be in (0, 1), got {self.ema}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"regularization.grad_clip must be > 0, got {self.grad_clip}")


@dataclass
class EarlyStoppingConfig:
    patience: int = 0               # epochs without improvement before stopping; 0 = off
    monitor: str = "val_loss"
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        _check_choice("early_stopping.monitor", self.monitor, MONITORS)
        if self.patience < 0:
            raise ValueError(f"early_stopping.patience must be >= 0, got {self.patience}")


@dataclass
class StageConfig:
    """One stage of a staged fine-tuning (001-c: head only for 20 epochs, then block 5 for 15).

    Each stage trains for `epochs` or `steps` (one of the two) with its own optimizer (fresh
    state at the stage's start) and the experiment's LR schedule run over the stage.
    """

    name: str = ""
    epochs: Optional[int] = None
    steps: Optional[int] = None
    # What trains: "head" (the new head, or the final classification layer), "all", or module-name
    # prefixes such as ["features.block5", "head"]; everything else is frozen.
    trainable: Union[str, list[str]] = "all"
    lr: Optional[float] = None          # base LR of the stage (default optimizer.lr)
    body_lr: Optional[float] = None     # LR of trainable parameters outside the head (default: lr)
    optimizer: Optional[str] = None     # optimizer name for this stage (default optimizer.name)

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError(f"stage {self.name or '?'}: give exactly one of epochs or steps")
        # 0 is allowed and skips the stage: 002-d refines "after 0 / 100 / 1,000 / 2,500 frozen steps",
        # one recipe run with -o stages.0.steps=N for each N
        if (self.epochs is not None and self.epochs < 0) or (self.steps is not None and self.steps < 0):
            raise ValueError(f"stage {self.name or '?'}: epochs/steps must be >= 0 (0 skips the stage)")
        if isinstance(self.trainable, str) and self.trainable not in ("head", "all"):
            raise ValueError(f"stage {self.name or '?'}: trainable={self.trainable!r}; use head, all or a list of "
                             f"module-name prefixes")
        for key in ("lr", "body_lr"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise ValueError(f"stage {self.name or '?'}: {key} must be > 0, got {value}")
        if self.optimizer is not None:
            _check_choice("stages.optimizer", self.optimizer, OPTIMIZERS)
