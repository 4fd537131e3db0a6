"""Model registry: ``register_model`` decorator, ``create_model``, ``list_models``, ``model_info``."""
from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn


@dataclass(frozen=True)
class ModelInfo:
    """Metadata of one registered model."""

    name: str
    factory: Callable[..., nn.Module]
    input_size: int  # default square input side, pixels
    description: str
    num_classes: int = 10  # the class count the model is meant for (1: one-logit binary head)

    def allowed_kwargs(self) -> list[str]:
        """Keyword arguments the factory accepts besides num_classes / in_chans."""
        params = inspect.signature(self.factory).parameters
        return [p for p in params if p not in ("num_classes", "in_chans")]


_REGISTRY: dict[str, ModelInfo] = {}


class ModelArgumentError(TypeError, ValueError):
    """A keyword argument the model does not take (catchable as TypeError or ValueError)."""


def register_model(
    name: str | None = None, *, input_size: int = 32, description: str = "", num_classes: int = 10
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a factory ``f(num_classes=10, in_chans=3, **kw) -> nn.Module``.

    The model name defaults to the function name. Registering a name twice raises
    ``ValueError`` (two models must never silently shadow each other).
    """

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or factory.__name__
        if key in _REGISTRY and _REGISTRY[key].factory is not factory:
            raise ValueError(f"model name {key!r} is already registered; pick another name")
        params = inspect.signature(factory).parameters
        for required in ("num_classes", "in_chans"):
            if required not in params:
                raise TypeError(f"model factory {key!r} must accept a {required!r} argument")
        doc = description or (inspect.getdoc(factory) or "").split("\n")[0]
        _REGISTRY[key] = ModelInfo(key, factory, input_size, doc, num_classes)
        return factory

    return decorator


def _unknown(name: str) -> ValueError:
    close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return ValueError(f"unknown model {name!r}.{hint} Run `cnnlab models` to list every model name.")


def model_info(name: str) -> ModelInfo:
    """Metadata of a registered model; ``ValueError`` with close matches if unknown."""
    if name not in _REGISTRY:
        raise _unknown(name)
    return _REGISTRY[name]


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of registered models, optionally filtered by an fnmatch ``pattern``."""
    import fnmatch

    names = sorted(_REGISTRY)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def create_model(name: str, num_classes: int = 10, in_chans: int = 3, input_size: int | None = None,
                 **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``.

    ``input_size`` (image side, pixels) goes to models whose head depends on it
    (flatten heads); global-pooling models take any size and ignore it.
    Unknown names raise ``ValueError`` listing close matches; keyword arguments the
    model does not take raise ``ModelArgumentError`` (a TypeError and ValueError)
    naming the argument and the allowed ones.
    """
    info = model_info(name)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"in_chans must be a positive int, got {in_chans!r}")
    allowed = info.allowed_kwargs()
    has_var_kw = any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(info.factory).parameters.values()
    )
    if not has_var_kw:
        bad = [k for k in kwargs if k not in allowed]
        if bad:
            raise ModelArgumentError(
                f"model {name!r} does not take argument(s) {', '.join(map(repr, bad))}; "
                f"allowed: {', '.join(allowed) or '(none besides num_classes, in_chans)'}"
            )
    if input_size is not None:
        if not isinstance(input_size, int) or input_size < 1:
            raise ValueError(f"input_size must be a positive int (pixels), got {input_size!r}")
        if "input_size" in allowed:
            kwargs["input_size"] = input_size
    return info.factory(num_classes=num_classes, in_chans=in_chans, **kwargs)
