"""``export_run``: a run to one file (ONNX, pt2, TorchScript), checked before it is written."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from cnnlab.atomic import write_bytes_atomically
from cnnlab.export.check import CheckResult, check_images, compare
from cnnlab.export.formats import FORMATS, SUFFIXES, ExportError, runner, to_bytes
from cnnlab.export.packaged import OUTPUTS, input_contract, package

CHECK_IMAGES = 1000  # default number of images the export is checked on (first of the test split)


@dataclass
class ExportResult:
    path: Path
    format: str
    bytes: int
    contract: dict[str, str]
    check: Optional[CheckResult]


def default_path(run_dir: Path, fmt: str, output: str = "probabilities") -> Path:
    """<run>/model.onnx, <run>/model.pt2, <run>/model.torchscript.pt; model-logits.onnx etc. for
    an export that returns logits, so it never replaces the probabilities file."""
    stem = "model" if output == "probabilities" else f"model-{output}"
    return Path(run_dir) / f"{stem}{SUFFIXES[fmt]}"


def export_run(run: Any, fmt: str = "onnx", out: Optional[str | Path] = None, check: bool = True,
               check_limit: int = CHECK_IMAGES, output: str = "probabilities") -> ExportResult:
    """Export a loaded run (``cnnlab.load_run``) to ``out`` (default: inside the run folder).

    The exported model takes uint8 N x C x H x W images and returns N x K probabilities (or the
    logits, ``output="logits"``), the
    normalization inside (``packaged.py``); its input contract is embedded (ONNX metadata_props,
    or the cnnlab.json extra file). With ``check``, the file's own runtime (onnxruntime for
    ONNX) is compared with PyTorch on up to ``check_limit`` of the run's images first, and
    nothing is written when they disagree beyond ``check.TOLERANCE`` (ExportError).
    The file is written atomically: a failure leaves any previous file as it was.
    """
    if hasattr(run, "require"):   # a run whose task has no class scores says so in one line
        run.require("export")
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if output not in OUTPUTS:
        raise ValueError(f"unknown export output {output!r}; use one of {', '.join(OUTPUTS)}")
    if check_limit < 1:
        raise ValueError(f"check_limit {check_limit}: check on at least 1 image, or pass check=False")
    path = Path(out) if out is not None else default_path(run.run_dir, fmt, output)
    if path.is_dir():
        raise ValueError(f"--out {path} is a folder; give a file name such as {path / default_path(Path(), fmt).name}")
    packaged = package(run, output)
    contract = input_contract(run, output)
    data = to_bytes(packaged, fmt, run.in_chans, run.input_size, contract)
    result = None
    if check:
        images, source, saved = check_images(run, check_limit)
        result = compare(packaged, runner(data, fmt), images, source, saved)
        if not result.ok:
            raise ExportError(f"the {fmt} export disagrees with PyTorch ({result.summary()}); nothing written to "
                              f"{path}. Try another --format, or report the model")
    write_bytes_atomically(path, data)
    return ExportResult(path=path, format=fmt, bytes=len(data), contract=contract, check=result)


__all__ = ["CHECK_IMAGES", "ExportResult", "default_path", "export_run"]
