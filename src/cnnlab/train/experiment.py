"""The experiment config: one dataclass tree, printed at the start and saved with every run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from cnnlab.config import ConfigError, apply_overrides, from_dict, read_yaml, to_dict
from cnnlab.data.config import AugmentConfig, DataConfig
from cnnlab.train.options import (EarlyStoppingConfig, OptimizerConfig, RegularizationConfig, ScheduleConfig,
                                  StageConfig)

PRECISIONS = ("auto", "fp32", "bf16")
INITS = ("default", "normal", "glorot", "he")


@dataclass
class HeadConfig:
    """A new classification head on the network's features (004-e: hidden [256], batch norm, dropout .5)."""

    hidden: list[int] = field(default_factory=list)   # widths of hidden dense layers (ReLU)
    batch_norm: bool = False                          # BatchNorm1d after each hidden layer
    dropout: float = 0.0                              # before the output layer (and after each hidden one)

    def __post_init__(self) -> None:
        if any(w < 1 for w in self.hidden) or not 0 <= self.dropout < 1:
            raise ValueError("model.head: hidden widths must be >= 1 and dropout in [0, 1)")


@dataclass
class SourceRecipe:
    """model.pretrained: {recipe: recipes/000-c-source.yaml}: the newest finished run of that recipe."""

    recipe: str = ""


@dataclass
class ModelConfig:
    name: str = "cnn004"
    kwargs: dict = field(default_factory=dict)   # passed to create_model (it rejects unknown ones)
    init: str = "default"                        # default | normal | glorot | he
    init_std: float = 0.01                       # std of init "normal"
    # imagenet | a URL | a run folder | a .safetensors file | {recipe: recipes/<id>.yaml}
    pretrained: Optional[Union[str, SourceRecipe]] = None
    head: Optional[HeadConfig] = None            # replace the network's head by this one, sized from the data
    frozen_bn: str = "eval"                      # frozen batch norm: eval (fixed statistics, as Keras) | train
    # Resize inputs on the device to this side (pixels, bilinear) inside the model's forward, e.g.
    # 32 -> 224 for ImageNet weights; training, evaluation, prediction and export all see it.
    resize_to: Optional[int] = None

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ValueError(f"model.init={self.init!r} is not allowed; choose one of {', '.join(INITS)}")
        if self.resize_to is not None and self.resize_to < 8:
            raise ValueError(f"model.resize_to must be >= 8 pixels, got {self.resize_to}")
        if self.frozen_bn not in ("eval", "train"):
            raise ValueError(f"model.frozen_bn={self.frozen_bn!r} is not allowed; choose eval or train")


@dataclass
class DistillConfig:
    """Knowledge distillation (Hinton et al. 2015): the loss mixes the labels' cross-entropy with the
    KL divergence from a trained teacher's softened predictions on the same augmented batch:
    (1 - alpha) * CE + alpha * temperature**2 * KL(teacher/T || student/T). The T**2 keeps the soft
    term's gradients the size of CE's as T grows. The teacher only predicts (eval mode, no grad)."""

    # a finished run folder | {recipe: recipes/<id>.yaml} (its newest finished run; --with-sources
    # trains it first). null = no distillation. The saved config.yaml holds the run folder used.
    teacher: Optional[Union[str, SourceRecipe]] = None
    temperature: float = 4.0
    alpha: float = 0.9                # weight of the teacher's term; 1 - alpha goes to the labels

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"distill.temperature must be > 0, got {self.temperature}")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"distill.alpha must be in [0, 1], got {self.alpha}")


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    regularization: RegularizationConfig = field(default_factory=RegularizationConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    epochs: int = 10
    batch_size: int = 64
    eval_batch_size: int = 1000
    # The epoch's last, partial training batch: null = drop it only when it holds a single image
    # (batch norm cannot normalize one value per channel); true = always drop it; false = keep it.
    drop_last: Optional[bool] = None
    seed: int = 0
    deterministic: bool = False      # torch.use_deterministic_algorithms; slower on CUDA
    device: str = "auto"             # auto (cuda if available, else cpu) | cpu | cuda | cuda:N
    precision: str = "auto"          # auto: bf16 autocast on CUDA, fp32 on CPU
    channels_last: Optional[bool] = None   # null = auto (on: faster on CUDA and on CPU)
    threads: Optional[int] = None    # CPU threads for torch; null = torch's default
    # torch.compile the training forward (inductor). Measured on the 2-core CPU with cnn004, batch 64:
    # the bare step 1.16x channels_last alone (benchmarks/cpu_options.py), the whole 004-a loop no
    # faster (benchmarks/train_speed.py). Costs 10-30 s of compiling at the first step and again when
    # a stage or freeze_after changes what trains. Evaluation stays eager.
    compile: bool = False
    # Keep freed tensor buffers in the process for reuse (glibc's malloc, Linux; elsewhere nothing
    # changes); false leaves malloc as it is. Saves the page faults of re-mapping each step's buffers:
    # 1.13-1.3x the training steps/s on the 2-core CPU (train/runtime.py: reuse_freed_memory).
    # Process-wide: once on, on until the process ends.
    reuse_memory: bool = True
    # Under DDP (--nproc / torchrun): batch-norm statistics over the whole global batch instead of
    # each rank's share (nn.SyncBatchNorm; CUDA only). Ignored in a single process.
    sync_bn: bool = False
    # Also score test with test-time augmentation (a second report row, test_tta_acc): true or "flip"
    # averages each image with its mirror; "flip+translate" adds both of them shifted 1 px up-left and
    # down-right (airbench's 6 views: +0.2-0.3 points over flip on fast-cpu, 3x the test passes);
    # "airbench" scores those 6 views as airbench94 does: logits averaged, the unshifted pair weighing 1/2.
    tta: Union[bool, Literal["flip", "flip+translate", "airbench"]] = False
    # Module-name prefix -> the epochs its parameters train; after them they are frozen for the rest of
    # the run ({whiten: 3}: airbench trains the whitening layer's bias for its first epochs only, and a
    # frozen first layer skips its input gradient: 1.12x the steps/s for airbench_cpu on 2 cores).
    freeze_after: dict[str, int] = field(default_factory=dict)
    # Also score the test set after every epoch (test_loss, test_acc in metrics.jsonl), for time-to-accuracy
    # when there is no validation split (speed records train on all 50,000 images). Only watched:
    # early stopping and the best checkpoint never look at it. Costs one test pass per epoch.
    monitor_test: bool = False
    # After the last epoch, recompute the batch-norm running statistics as the plain mean over this many
    # training batches (batch_size un-augmented images each, a fixed draw from the seed) before the final
    # evaluation and the saved weights; 0 keeps the moving averages of the last training batches.
    # Only the statistics change (train/batchnorm_stats.py). The per-epoch rows (val, monitor_test)
    # still use the moving averages.
    precise_bn: int = 0
    # Score the training split with the final weights (summary final.train_*, predictions/train.npz).
    # A full pass over it: speed recipes turn it off (19 s of fast-cpu's 10 minutes on 2 cores), and
    # final.train_loss/train_acc are then null.
    evaluate_train: bool = True
    # Optional loggers for people who use them: {tensorboard: true, mlflow: {experiment: NAME}}
    logging: dict = field(default_factory=dict)
    # Staged fine-tuning: [{epochs or steps, trainable, lr, body_lr, optimizer}, ...]; when given,
    # the run lasts as long as its stages (epochs is then set from them).
    stages: list[StageConfig] = field(default_factory=list)
    # What a step trains: {} = classification; {name: siamese, loss: ..., margin: ...} (report 002-c).
    task: dict = field(default_factory=dict)
    # Train against a teacher network's soft predictions too (classification only): {teacher, temperature, alpha}.
    distill: DistillConfig = field(default_factory=DistillConfig)

    def __post_init__(self) -> None:
        if self.precise_bn < 0:
            raise ValueError(f"precise_bn must be >= 0 training batches (0 = off), got {self.precise_bn}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError("batch_size and eval_batch_size must be >= 1")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is not allowed; choose one of {', '.join(PRECISIONS)}")
        if self.stages and not any(st.steps or st.epochs for st in self.stages):
            raise ValueError("stages: every stage has 0 epochs/steps (0 skips a stage); give at least one a length")
        if self.stages and all(st.epochs is not None for st in self.stages):
            self.epochs = sum(st.epochs for st in self.stages)
        for prefix, n in self.freeze_after.items():
            if n < 1:
                raise ValueError(f"freeze_after.{prefix}: {n} epochs; give >= 1 (a module frozen from the start is "
                                 f"a stage's `trainable` list)")
        if not self.name or "/" in self.name:
            raise ValueError(f"name={self.name!r} must be a non-empty name without '/'")
        if self.data.normalize == "source" and self.model.pretrained is None:
            raise ValueError("data.normalize: source uses the statistics of the source network, and model.pretrained "
                             "is not set; set model.pretrained or choose another data.normalize (per_channel)")


def load_experiment(path: Optional[str | Path] = None, overrides: Optional[list[str]] = None) -> ExperimentConfig:
    """Defaults -> YAML file (optional) -> `key.sub=value` overrides, validated into a typed config."""
    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    if path is not None and "name" not in data:
        data["name"] = Path(path).stem
    apply_overrides(data, overrides or [])
    return from_dict(ExperimentConfig, data, where="")


def experiment_from_dict(data: dict) -> ExperimentConfig:
    return from_dict(ExperimentConfig, data, where="")


def experiment_to_yaml(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=None)


__all__ = ["ConfigError", "ExperimentConfig", "ModelConfig", "load_experiment", "experiment_to_yaml", "experiment_from_dict"]
