"""Serializing a packaged run (``packaged.py``) to ONNX, torch.export (.pt2) or TorchScript, in memory.

ONNX goes through torch's own exporter, ``torch.onnx.export(..., dynamo=True)`` (torch.export
based, needs the onnx and onnxscript packages): the TorchScript-based ``dynamo=False`` path is
deprecated for removal in torch 2.9+, and so is TorchScript itself (``torch.jit``), kept here
only for tools that still load it; ``pt2`` is its non-deprecated successor. Every format has
a dynamic batch dimension and a fixed C x H x W (the run's input size).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from typing import Callable, Iterator

import numpy as np
import torch

from cnnlab.export.packaged import INPUT_NAME, PackagedModel

FORMATS = ("onnx", "pt2", "torchscript")
SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".torchscript.pt"}
EXTRA_FILE = "cnnlab.json"  # the input contract inside .pt2 / TorchScript files
EXAMPLE_BATCH = 2           # export traces a batch of 2 (a batch of 1 would be specialized as a constant)
EXPORT_HINT = "pip install 'cnnlab[export]' (onnx, onnxruntime, onnxscript)"


class ExportError(RuntimeError):
    """A model that cannot be exported to the chosen format, or a missing exporter package."""


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """torch's exporters warn about things that are not the user's concern (torchvision ops not
    registered, their own deprecations): keep the terminal to what cnnlab prints."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "torch.jit")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _example(channels: int, size: int) -> torch.Tensor:
    return torch.zeros(EXAMPLE_BATCH, channels, size, size, dtype=torch.uint8)


def _dynamic_batch() -> dict:
    return {INPUT_NAME: {0: torch.export.Dim("batch")}}


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(f"the {module} package is not installed: {EXPORT_HINT}") from None


def to_bytes(packaged: PackagedModel, fmt: str, channels: int, size: int, contract: dict[str, str]) -> bytes:
    """The file content of ``packaged`` in format ``fmt``, the input contract embedded."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    example = _example(channels, size)
    try:
        with _quiet_exporter():
            if fmt == "onnx":
                return _onnx_bytes(packaged, example, contract)
            if fmt == "pt2":
                program = torch.export.export(packaged, (example,), dynamic_shapes=_dynamic_batch())
                buffer = io.BytesIO()
                torch.export.save(program, buffer, extra_files={EXTRA_FILE: json.dumps(contract)})
                return buffer.getvalue()
            traced = torch.jit.trace(packaged, example)
            buffer = io.BytesIO()
            torch.jit.save(traced, buffer, _extra_files={EXTRA_FILE: json.dumps(contract)})
            return buffer.getvalue()
    except ExportError:
        raise
    except Exception as err:  # exporters raise many kinds, with long messages: keep the first line
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise ExportError(f"{contract.get('cnnlab.model', 'the model')} cannot be exported to {fmt} "
                          f"({type(err).__name__}: {first}); try another --format") from None


def _onnx_bytes(packaged: PackagedModel, example: torch.Tensor, contract: dict[str, str]) -> bytes:
    onnx = _require("onnx")
    _require("onnxscript")   # torch.onnx's dynamo exporter translates through it
    program = torch.onnx.export(packaged, (example,), None, dynamo=True, verbose=False,
                                input_names=[INPUT_NAME], output_names=[packaged.output],
                                dynamic_shapes=_dynamic_batch())
    proto = program.model_proto
    for key, value in contract.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = "cnnlab export: the input contract (classes, input size, dtype, normalization) is in metadata_props"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def runner(data: bytes, fmt: str) -> Callable[[np.ndarray], np.ndarray]:
    """A function running the serialized model ``data`` (the exported file's bytes) on uint8
    N x C x H x W numpy images: onnxruntime for ONNX, torch for the others."""
    if fmt == "onnx":
        ort = _require("onnxruntime")
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        output = session.get_outputs()[0].name   # "probabilities" or "logits" (packaged.OUTPUTS)
        return lambda images: session.run([output], {INPUT_NAME: images})[0]
    with _quiet_exporter():
        loaded = torch.export.load(io.BytesIO(data)).module() if fmt == "pt2" else torch.jit.load(io.BytesIO(data))

    @torch.no_grad()
    def run(images: np.ndarray) -> np.ndarray:
        with _quiet_exporter():
            return loaded(torch.from_numpy(images)).numpy()

    return run


def read_contract(path) -> dict[str, str]:
    """The input contract embedded in an exported file (any of the formats)."""
    from pathlib import Path

    path = Path(path)
    if path.suffix == ".onnx":
        onnx = _require("onnx")
        model = onnx.load(str(path), load_external_data=False)
        return {p.key: p.value for p in model.metadata_props}
    extra = {EXTRA_FILE: ""}
    with _quiet_exporter():
        if path.suffix == ".pt2":
            torch.export.load(str(path), extra_files=extra)
        else:
            torch.jit.load(str(path), _extra_files=extra)
    return json.loads(extra[EXTRA_FILE] or "{}")


__all__ = ["EXTRA_FILE", "ExportError", "FORMATS", "SUFFIXES", "read_contract", "runner", "to_bytes"]
