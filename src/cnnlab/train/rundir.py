"""The run folder: plain files anyone can read without cnnlab.

    <runs>/<YYYYmmdd-HHMMSS>-<name>[-s<seed>]/
        config.yaml       resolved experiment config
        metrics.jsonl     one JSON object per epoch
        summary.json      final numbers, parameter counts, timing, versions, hardware, git commit
        checkpoints/      last.pt (resume state), best.safetensors (best validation accuracy)
        model.safetensors final weights
        predictions/      <split>.npz: probs, labels, indices
        curves.png, model_summary.txt, report.html, report.md
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable

from cnnlab.atomic import write_text_atomically


def new_run_dir(runs_dir: Path, name: str, seed_suffix: int | None = None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{name}" + (f"-s{seed_suffix}" if seed_suffix is not None else "")
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        path = runs_dir / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {runs_dir}")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def write_json(path: Path, data: dict) -> None:
    write_text_atomically(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def write_metrics(path: Path, rows: Iterable[dict]) -> None:
    """Rewrite the whole metrics file (a few hundred lines at most), atomically."""
    write_text_atomically(path, "".join(json.dumps(r, default=_json_default) + "\n" for r in rows))


def read_metrics(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
