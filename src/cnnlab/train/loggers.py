"""Optional experiment loggers (TensorBoard, MLflow) as trainer callbacks, for people who already use them.

Each needs its own package, imported when the logger is made (before a run folder exists, so a
missing package never leaves a half-made run); without it the logger raises LoggerUnavailable
naming the package to install. Enable them from settings with
``loggers_from_settings({"tensorboard": True, "mlflow": {"experiment": "cifar10"}})`` and pass
the list as ``train(..., callbacks=...)``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from cnnlab.runfolder import CONFIG, read_config_dict
from cnnlab.train.callbacks import Callback

# metrics.jsonl key -> logged name (TensorBoard groups charts by the part before "/")
EPOCH_SCALARS = {
    "train_loss": "loss/train", "val_loss": "loss/val", "train_acc": "accuracy/train", "val_acc": "accuracy/val",
    "lr": "lr", "seconds": "time/epoch_seconds", "images_per_sec": "time/images_per_sec",
}
FINAL_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")


class LoggerUnavailable(RuntimeError):  # noqa: N818 (the name says what happened)
    """The package an enabled logger needs is not installed."""


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _epoch_number(epoch: int, logs: dict) -> int:
    """The 1-based epoch of a metrics row (the hook's ``epoch`` argument is 0-based)."""
    return int(logs.get("epoch", epoch + 1))


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{"optimizer": {"lr": 0.1}} -> {"optimizer.lr": "0.1"} (lists as JSON), for parameter logging."""
    flat: dict[str, str] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return flat


def _read_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.yaml ({} before the trainer wrote it), read by the one run-folder reader."""
    if not (Path(run_dir) / CONFIG).is_file():
        return {}
    return read_config_dict(run_dir)


class TensorBoardLogger(Callback):
    """Per-epoch loss, accuracy, learning rate and speed as TensorBoard scalars.

    Events go to ``log_dir`` (default: ``<run_dir>/tensorboard``); view with
    ``tensorboard --logdir runs/``. Needs the ``tensorboard`` package.
    """

    def __init__(self, log_dir: str | Path | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise LoggerUnavailable(
                "TensorBoard logging is on but the tensorboard package is missing: pip install tensorboard "
                "(or turn the tensorboard setting off)") from error
        self._writer_class = SummaryWriter
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.writer: Any = None

    def on_train_begin(self, logs: dict) -> None:
        SummaryWriter = self._writer_class
        log_dir = self.log_dir or Path(logs["run_dir"]) / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(log_dir))
        config = _read_config(Path(logs["run_dir"])) if "run_dir" in logs else {}
        if config:
            self.writer.add_text("config", "```\n" + yaml.safe_dump(config, sort_keys=False) + "```", 0)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.writer is None:
            return
        step = _epoch_number(epoch, logs)
        for key, name in EPOCH_SCALARS.items():
            value = _numeric(logs.get(key))
            if value is not None:
                self.writer.add_scalar(name, value, step)
        self.writer.flush()  # an epoch takes seconds to minutes: show it in TensorBoard now

    def on_train_end(self, logs: dict) -> None:
        if self.writer is None:
            return
        final = logs.get("final") or {}
        step = int(logs.get("epochs_completed") or 0)
        for key in FINAL_KEYS:
            value = _numeric(final.get(key))
            if value is not None:
                self.writer.add_scalar(f"final/{key}", value, step)
        self.writer.add_text("status", str(logs.get("status", "unknown")), step)
        self.writer.close()
        self.writer = None


MLFLOW_STATUS = {"completed": "FINISHED", "early_stopped": "FINISHED", "interrupted": "KILLED", "diverged": "FAILED"}


class MLflowLogger(Callback):
    """The run's config as MLflow params, per-epoch metrics, final metrics and the report as artifacts.

    ``tracking_uri`` defaults to MLflow's own default (./mlruns or $MLFLOW_TRACKING_URI);
    ``experiment`` to the MLflow default experiment. Needs the ``mlflow`` (or ``mlflow-skinny``) package.
    """

    PARAM_VALUE_MAX = 500  # characters; MLflow rejects longer parameter values on some back ends

    def __init__(self, experiment: str | None = None, tracking_uri: str | None = None) -> None:
        try:
            import mlflow
        except ImportError as error:
            raise LoggerUnavailable(
                "MLflow logging is on but the mlflow package is missing: pip install mlflow-skinny "
                "(or turn the mlflow setting off)") from error
        self._mlflow_module = mlflow
        self.experiment = experiment
        self.tracking_uri = tracking_uri
        self.mlflow: Any = None
        self.run_dir: Path | None = None

    def on_train_begin(self, logs: dict) -> None:
        mlflow = self.mlflow = self._mlflow_module
        if self.tracking_uri:
            mlflow.set_tracking_uri(self.tracking_uri)
        if self.experiment:
            mlflow.set_experiment(self.experiment)
        self.run_dir = Path(logs["run_dir"]) if "run_dir" in logs else None
        mlflow.start_run(run_name=self.run_dir.name if self.run_dir else None)
        config = _read_config(self.run_dir) if self.run_dir else {}
        params = {k: v[: self.PARAM_VALUE_MAX] for k, v in flatten(config).items()}
        if params:
            mlflow.log_params(params)
        if self.run_dir:
            mlflow.set_tag("cnnlab.run_dir", str(self.run_dir))

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.mlflow is None:
            return
        metrics = {name.replace("/", "_"): _numeric(logs.get(key)) for key, name in EPOCH_SCALARS.items()}
        self.mlflow.log_metrics({k: v for k, v in metrics.items() if v is not None}, step=_epoch_number(epoch, logs))

    def on_train_end(self, logs: dict) -> None:
        if self.mlflow is None:
            return
        final = logs.get("final") or {}
        finals = {f"final_{k}": _numeric(final.get(k)) for k in FINAL_KEYS}
        self.mlflow.log_metrics({k: v for k, v in finals.items() if v is not None})
        self.mlflow.set_tag("cnnlab.status", str(logs.get("status", "unknown")))
        if self.run_dir:
            for name in ("report.html", "summary.json", "metrics.jsonl", "curves.png"):
                if (self.run_dir / name).is_file():
                    self.mlflow.log_artifact(str(self.run_dir / name))
        self.mlflow.end_run(status=MLFLOW_STATUS.get(str(logs.get("status")), "FINISHED"))
        self.mlflow = None


def loggers_from_settings(settings: dict[str, Any] | None) -> list[Callback]:
    """Loggers enabled in ``settings``: {"tensorboard": true | {"log_dir": ...},
    "mlflow": true | {"experiment": ..., "tracking_uri": ...}}. Unknown keys raise ValueError."""
    settings = settings or {}
    unknown = set(settings) - {"tensorboard", "mlflow"}
    if unknown:
        raise ValueError(f"unknown logger setting(s) {sorted(unknown)}; the loggers are: tensorboard, mlflow")
    loggers: list[Callback] = []
    for key, factory in (("tensorboard", TensorBoardLogger), ("mlflow", MLflowLogger)):
        value = settings.get(key)
        if value is None or value is False:
            continue
        if value is True:
            loggers.append(factory())
        elif isinstance(value, dict):
            try:
                loggers.append(factory(**value))
            except TypeError as error:
                raise ValueError(f"logging.{key}: bad option in {value!r} ({error}); see {factory.__name__}'s "
                                 "arguments") from error
        else:
            raise ValueError(f"logging.{key} must be true, false or a mapping of options, got {value!r}")
    return loggers
