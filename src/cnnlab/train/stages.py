"""Stages of a run: what trains when, with which optimizer and learning rates.

A run without `stages` is one stage that trains everything for `epochs`. With stages (001-c:
head for 20 epochs, then block 5 for 15; 002-d: refine after 100 frozen steps), each stage
owns a span of optimizer steps; at its first step the loop freezes and unfreezes parameters by
name, puts frozen batch norm in inference mode, and builds the stage's optimizer afresh. All of
it is a pure function of the global step, so a resume lands in the right stage.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from cnnlab.models import count_params
from cnnlab.models.pretrained import classifier_layer
from cnnlab.train.optim import build_optimizer
from cnnlab.train.options import OptimizerConfig, StageConfig


@dataclass(frozen=True)
class Stage:
    index: int
    name: str
    start_step: int          # global optimizer step at which the stage begins
    steps: int
    trainable: object        # "head" | "all" | list of module-name prefixes
    lr: float
    body_lr: Optional[float]
    optimizer: str

    @property
    def end_step(self) -> int:
        return self.start_step + self.steps


def plan_stages(stages: list[StageConfig], steps_per_epoch: int, epochs: int, opt: OptimizerConfig) -> list[Stage]:
    """The stages as spans of global steps (one stage that trains everything when none are given)."""
    if not stages:
        return [Stage(0, "train", 0, steps_per_epoch * epochs, "all", opt.lr, None, opt.name)]
    plan, start = [], 0
    for i, st in enumerate(stages):
        steps = st.steps if st.steps is not None else st.epochs * steps_per_epoch
        if steps == 0:   # a skipped stage (002-d refined after 0 frozen steps) takes no step and no index
            continue
        plan.append(Stage(len(plan), st.name or f"stage {i + 1}", start, steps, st.trainable,
                          st.lr if st.lr is not None else opt.lr, st.body_lr, st.optimizer or opt.name))
        start += steps
    return plan   # not empty: ExperimentConfig refuses stages that are all of length 0


def total_epochs(plan: list[Stage], steps_per_epoch: int) -> int:
    return math.ceil(plan[-1].end_step / steps_per_epoch)


def stage_at(plan: list[Stage], global_step: int) -> Stage:
    """The stage that takes optimizer step `global_step` (the last one past the end)."""
    for stage in plan:
        if global_step < stage.end_step:
            return stage
    return plan[-1]


def head_prefixes(model: nn.Module) -> list[str]:
    """The new layers: a declared head (`head.*`), else the final classification layer."""
    if hasattr(model, "body") and hasattr(model, "head"):
        return ["head"]
    last = classifier_layer(model)
    if last is None:
        raise ValueError("trainable: head, but the model has no final nn.Linear of num_classes outputs; "
                         "name the modules to train instead")
    return [last]


def _matches(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def trainable_prefixes(model: nn.Module, trainable, key: str = "stages.trainable") -> Optional[list[str]]:
    """Prefixes of the parameters that train (None: all). Unknown prefixes are an error (naming the
    config `key`) listing what exists."""
    if trainable == "all":
        return None
    if trainable == "head":
        return head_prefixes(model)
    names = [n for n, _ in model.named_parameters()]
    prefixes = []
    for p in trainable:
        if p == "head":
            prefixes += head_prefixes(model)
        elif any(_matches(n, [p]) for n in names):
            prefixes.append(p)
        elif any(_matches(n, [f"body.{p}"]) for n in names):   # a name inside the network under a new head
            prefixes.append(f"body.{p}")
        else:
            modules = sorted({n.rsplit(".", 1)[0] for n in names})
            raise ValueError(f"{key}: no parameters under {p!r}; modules with parameters: "
                             f"{', '.join(modules[:40])}{' ...' if len(modules) > 40 else ''}")
    return prefixes


def apply_trainable(model: nn.Module, trainable) -> None:
    prefixes = trainable_prefixes(model, trainable)
    for name, param in model.named_parameters():
        param.requires_grad_(prefixes is None or _matches(name, prefixes))


def freeze_due(model: nn.Module, freeze_after: dict[str, int], global_step: int, steps_per_epoch: int) -> bool:
    """Freeze the parameters under each `freeze_after` prefix once its epochs have passed at
    `global_step`; True when some parameter changed. A pure function of the step, so a resumed run
    freezes what the uninterrupted one had frozen."""
    due = [p for p, epochs in freeze_after.items() if global_step >= epochs * steps_per_epoch]
    if not due:
        return False
    prefixes = trainable_prefixes(model, due, key="freeze_after")
    changed = False
    for name, param in model.named_parameters():
        if param.requires_grad and _matches(name, prefixes):
            param.requires_grad_(False)
            changed = True
    return changed


def all_params_frozen(module: nn.Module) -> bool:
    """The module has parameters of its own and none of them trains (a frozen batch norm)."""
    params = list(module.parameters(recurse=False))
    return bool(params) and not any(p.requires_grad for p in params)


def set_train_mode(model: nn.Module, frozen_bn: str) -> None:
    """model.train(), except batch norm whose parameters are all frozen stays in inference mode
    (frozen_bn="eval", Keras' trainable=False): its moving statistics then stay as loaded."""
    model.train()
    if frozen_bn != "eval":
        return
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and all_params_frozen(module):
            module.eval()


NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def stage_optimizer(model: nn.Module, opt: OptimizerConfig, stage: Stage) -> torch.optim.Optimizer:
    """The stage's optimizer over its trainable parameters, in groups whose LR is the scheduled LR
    times the group's "lr_scale": with body_lr, the body's is body_lr / lr; with
    optimizer.norm_lr_scale, the normalization layers' parameters are a group of their own at that
    scale, with weight decay divided by it (the same lr x wd shrink per step as the rest)."""
    cfg = dataclasses.replace(opt, name=stage.optimizer, lr=stage.lr)
    heads = head_prefixes(model) if stage.body_lr is not None else []
    norm_ids = {id(p) for m in model.modules() if isinstance(m, NORM_LAYERS) for p in m.parameters(recurse=False)}
    groups: dict[tuple[bool, bool], list] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            key = (bool(heads) and not _matches(name, heads), opt.norm_lr_scale != 1 and id(param) in norm_ids)
            groups.setdefault(key, []).append(param)
    param_groups = []
    for (in_body, is_norm), params in sorted(groups.items()):
        scale = (stage.body_lr / stage.lr if in_body else 1.0) * (opt.norm_lr_scale if is_norm else 1.0)
        group = {"params": params, "lr_scale": scale}
        if is_norm:
            group["weight_decay"] = cfg.weight_decay / opt.norm_lr_scale
        param_groups.append(group)
    return build_optimizer(param_groups, cfg)


def stage_counts(model: nn.Module, plan: list[Stage]) -> list[dict]:
    """Trainable and frozen parameter counts of every stage (Keras' summary numbers); the model's
    requires_grad flags are left as they were."""
    flags = [p.requires_grad for p in model.parameters()]
    out = []
    try:
        for stage in plan:
            apply_trainable(model, stage.trainable)
            counts = count_params(model)
            out.append({"name": stage.name, "start_step": stage.start_step, "steps": stage.steps,
                        "trainable": stage.trainable, "lr": stage.lr, "body_lr": stage.body_lr,
                        "optimizer": stage.optimizer, "params": counts})
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
    return out
