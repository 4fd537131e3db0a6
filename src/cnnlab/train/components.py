"""The run's stateful parts, and the one checkpoint that holds them all.

Every part of a run that changes while it trains and must continue bitwise after a kill has
``state_dict()`` and ``load_state_dict(state)``: the loop's TrainState, the model, the
optimizer (and which stage built it), EMA and Lookahead, the random streams, and the callbacks
with a ``state_key`` (metrics rows, best weights, early stopping). ``Checkpointer`` saves them
under their keys in checkpoints/last.pt and restores them in the same order; nothing else is
written there or read back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Protocol

import torch

from cnnlab.train.checkpoint import CheckpointError, restore_rng_state, rng_state, save_checkpoint


class Stateful(Protocol):
    def state_dict(self) -> Any: ...
    def load_state_dict(self, state: Any) -> None: ...


class Value:
    """A stateful part made of a getter and a setter (e.g. the optimizer's stage index)."""

    def __init__(self, get: Callable[[], Any], set: Callable[[Any], None]) -> None:  # noqa: A002
        self._get, self._set = get, set

    def state_dict(self) -> Any:
        return self._get()

    def load_state_dict(self, state: Any) -> None:
        self._set(state)


class RandomStreams:
    """torch's global generator (dropout), CUDA's, and the run's named generators (shuffle,
    augmentation, a task's own)."""

    def __init__(self, generators: dict[str, torch.Generator]) -> None:
        self.generators = generators

    def state_dict(self) -> dict:
        return rng_state(self.generators)

    def load_state_dict(self, state: dict) -> None:
        restore_rng_state(state, self.generators)


class CallbackStates:
    """The state of every callback that has a ``state_key`` (any object with the hooks may be a callback)."""

    def __init__(self, callbacks: list) -> None:
        self.callbacks = [cb for cb in callbacks if getattr(cb, "state_key", None)]

    def state_dict(self) -> dict:
        return {cb.state_key: cb.state_dict() for cb in self.callbacks}

    def load_state_dict(self, state: dict) -> None:
        for cb in self.callbacks:
            if cb.state_key in state:
                cb.load_state_dict(state[cb.state_key])


class Checkpointer:
    """checkpoints/last.pt: {key: part.state_dict()} for every part (None for a part the run lacks)."""

    def __init__(self, path: Path, parts: dict[str, Optional[Stateful]]) -> None:
        self.path, self.parts = Path(path), parts

    def save(self) -> None:
        save_checkpoint({key: part.state_dict() if part is not None else None for key, part in self.parts.items()},
                        self.path)

    def restore(self, ckpt: dict) -> None:
        """Load every part from `ckpt`, in the order the parts were given."""
        for key, part in self.parts.items():
            if part is None:
                continue
            if ckpt.get(key) is None:
                raise CheckpointError(f"{self.path} holds no {key!r} state, which this run has; it was written by "
                                      f"another configuration: delete it to restart the run from its config")
            part.load_state_dict(ckpt[key])


__all__ = ["CallbackStates", "Checkpointer", "RandomStreams", "Stateful", "Value"]
