"""Checkpoints: everything needed to continue a run bitwise, written atomically and durably.

Loaded with `weights_only=True`: a checkpoint holds only tensors, numbers, strings, lists and
dicts, so opening one never runs pickled code.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from cnnlab.atomic import write_atomically

CHECKPOINT_FORMAT = 2


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or from an incompatible run."""


def save_checkpoint(state: dict, path: Path) -> None:
    # A kill or a power loss leaves the old checkpoint or the new one, never half of one.
    write_atomically(Path(path), lambda tmp: torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp))


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; a run writes checkpoints/last.pt after its first epoch")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" not in str(err).lower():
            raise CheckpointError(f"cannot read checkpoint {path} (truncated or not a checkpoint); "
                                  f"delete it to restart the run from its config") from None
        # torch's own advice here (load with weights_only=False) would run whatever code the file holds.
        raise CheckpointError(f"{path} is not a cnnlab checkpoint: it holds pickled Python objects, which may "
                              f"contain code, so cnnlab does not open it. Use a checkpoint written by cnnlab.") from None
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or not a checkpoint: {err}); "
                              f"delete it to restart the run from its config") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else None
        raise CheckpointError(f"{path} is not a cnnlab checkpoint of format {CHECKPOINT_FORMAT} (found {found!r}); "
                              f"a run written by another cnnlab version resumes only with that version")
    return state


def rng_state(generators: dict[str, torch.Generator]) -> dict:
    """torch's global RNG (dropout), CUDA's, and each explicit generator with the device it lives on."""
    state = {"torch": torch.get_rng_state(),
             "generators": {k: {"device": g.device.type, "state": g.get_state()} for k, g in generators.items()}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_generator(saved: dict, gen: torch.Generator, name: str) -> bool:
    """Restore ``gen`` from a saved {device, state}; True when the stream continues bitwise.

    A CPU generator's state cannot be loaded into a CUDA generator (nor the reverse): a run
    resumed on another kind of device re-seeds that stream from the saved state instead, and
    says that the rest of the run is no longer bitwise the same as an uninterrupted one.
    """
    if saved["device"] == gen.device.type:
        gen.set_state(saved["state"])
        return True
    seed = int.from_bytes(bytes(saved["state"][-8:].tolist()), "little") & ((1 << 63) - 1)
    gen.manual_seed(seed)
    warnings.warn(f"the checkpoint's {name} random stream was on {saved['device']}, this run is on "
                  f"{gen.device.type}: re-seeded from the saved state; the resumed run is reproducible but not "
                  f"bitwise equal to one that never stopped", RuntimeWarning, stacklevel=2)
    return False


def restore_rng_state(state: dict, generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    for key, gen in generators.items():
        restore_generator(state["generators"][key], gen, key)


def save_weights(model: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Model weights (parameters and buffers) as safetensors, atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_atomically(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no weights file at {path}")
    try:
        return load_file(str(path))
    except Exception as err:
        raise CheckpointError(f"cannot read weights {path}: the file is truncated or not safetensors ({err}); "
                              f"re-run or re-copy it") from None
