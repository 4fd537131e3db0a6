"""Optional TensorBoard and MLflow loggers, each tested when its package is installed."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cnnlab.train.loggers import LoggerUnavailable, MLflowLogger, TensorBoardLogger, flatten, loggers_from_settings
from report_fixtures import make_run


def _drive(logger, run_dir: Path) -> None:
    """Call the hooks as the trainer does, with the run folder's own metrics and summary."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((run_dir / "summary.json").read_text())
    logger.on_train_begin({"run_dir": str(run_dir), "epochs": len(rows), "steps_per_epoch": 10})
    for index, row in enumerate(rows):
        logger.on_epoch_end(index, dict(row))
    logger.on_train_end({**summary, "run_dir": str(run_dir)})


def test_settings_build_the_enabled_loggers_and_reject_unknown_ones() -> None:
    pytest.importorskip("tensorboard", reason="tensorboard not installed: pip install tensorboard")
    pytest.importorskip("mlflow", reason="mlflow not installed: pip install mlflow-skinny")
    loggers = loggers_from_settings({"tensorboard": True, "mlflow": {"experiment": "x"}})
    assert [type(x) for x in loggers] == [TensorBoardLogger, MLflowLogger]
    assert loggers[1].experiment == "x"
    assert loggers_from_settings({"tensorboard": False}) == [] and loggers_from_settings(None) == []
    with pytest.raises(ValueError, match="wandb"):
        loggers_from_settings({"wandb": True})
    with pytest.raises(ValueError, match="bad option"):
        loggers_from_settings({"mlflow": {"experiments": "typo"}})

def test_settings_are_checked_without_the_packages() -> None:
    assert loggers_from_settings({"tensorboard": False}) == [] and loggers_from_settings(None) == []
    with pytest.raises(ValueError, match="wandb"):
        loggers_from_settings({"wandb": True})
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": "1", "a.c": "[1, 2]", "d": "None"}


def test_missing_package_gives_an_actionable_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a None entry in sys.modules makes the import fail exactly as if the package were absent
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(LoggerUnavailable, match="pip install mlflow-skinny"):
        MLflowLogger()
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(LoggerUnavailable, match="pip install tensorboard"):
        TensorBoardLogger()


def test_tensorboard_logger_writes_the_epoch_scalars(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="tensorboard not installed: pip install tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = make_run(tmp_path, epochs=3, splits=())
    _drive(TensorBoardLogger(), run_dir)
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert {"loss/train", "loss/val", "accuracy/train", "accuracy/val", "lr", "final/test_acc"} <= set(events.Tags()["scalars"])
    assert [(e.step, round(e.value, 4)) for e in events.Scalars("loss/train")] == [(1, 2.0), (2, 1.0), (3, 0.6667)]
    assert events.Scalars("final/test_acc")[0].value == pytest.approx(0.5)


def test_mlflow_logger_records_params_metrics_and_artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow", reason="mlflow not installed: pip install mlflow-skinny")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a folder store keeps the test free of a database
    from mlflow.tracking import MlflowClient

    run_dir = make_run(tmp_path / "runs", epochs=2, splits=())
    (run_dir / "report.html").write_text("<html></html>")
    uri = (tmp_path / "mlruns").as_uri()
    _drive(MLflowLogger(experiment="cnnlab-test", tracking_uri=uri), run_dir)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("cnnlab-test")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == run_dir.name and run.info.status == "FINISHED"
    assert run.data.params["optimizer.lr"] == "0.1" and run.data.params["name"] == "004-a"
    history = client.get_metric_history(run.info.run_id, "accuracy_val")
    assert [(m.step, round(m.value, 4)) for m in history] == [(1, 0.35), (2, 0.45)]
    assert run.data.metrics["final_test_acc"] == pytest.approx(0.5)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"report.html", "summary.json"}
