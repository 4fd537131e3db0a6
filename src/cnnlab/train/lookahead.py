"""Lookahead over any optimizer (Zhang et al. 2019, in airbench's form): a slow copy of the weights
that the fast ones are pulled back to every few steps (config: optimizer.lookahead)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from cnnlab.train.options import LookaheadConfig
from cnnlab.train.stages import all_params_frozen


def lookahead_share(step: int, total_steps: int, cfg: LookaheadConfig) -> Optional[float]:
    """The slow copy's share after optimizer step `step` (1-based) of `total_steps`, or None when
    that step has no pull. A pure function of the step, so a resumed run pulls where the
    uninterrupted one did; the run's last step takes the slow weights whole (share 1)."""
    if step >= total_steps:
        return 1.0
    if step % cfg.every:
        return None
    return cfg.decay * (step / total_steps) ** cfg.ramp


def frozen_keys(model: nn.Module) -> set[str]:
    """state_dict keys that do not train now: parameters with requires_grad off, and the buffers
    of modules whose parameters are all frozen (a frozen batch norm's statistics)."""
    keys = set()
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        keys.update(prefix + name for name, p in module.named_parameters(recurse=False) if not p.requires_grad)
        if all_params_frozen(module):
            keys.update(prefix + name for name, _ in module.named_buffers(recurse=False))
    return keys


class Lookahead:
    """The slow copy of a model's floating-point state (parameters and batch-norm statistics)."""

    def __init__(self, model: nn.Module, settings: Optional[LookaheadConfig] = None, total_steps: int = 0):
        self.slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}
        self.settings, self.total_steps = settings, total_steps   # for after_step: when to pull, how much

    def after_step(self, model: nn.Module, global_step: int) -> None:
        """The loop's hook after each optimizer step (global_step: steps taken so far, 1-based)."""
        share = lookahead_share(global_step, self.total_steps, self.settings)
        if share is not None:
            self.pull(model, share)

    @torch.no_grad()
    def pull(self, model: nn.Module, share: float) -> None:
        """slow <- share * slow + (1 - share) * fast; then fast <- slow. Frozen entries (a stage's or
        freeze_after's) stay as they are: their slow copy just follows them."""
        state = model.state_dict()
        frozen = frozen_keys(model)
        for key, slow in self.slow.items():
            if key in frozen:
                slow.copy_(state[key])
                continue
            slow.lerp_(state[key], 1.0 - share)
            state[key].copy_(slow)

    def state_dict(self) -> dict:
        return dict(self.slow)

    def load_state_dict(self, state: dict) -> None:
        missing = sorted(set(self.slow) - set(state))
        if missing:
            raise KeyError(f"lookahead state lacks {missing[:5]}: the checkpoint is from another model")
        for key, slow in self.slow.items():
            slow.copy_(state[key])
