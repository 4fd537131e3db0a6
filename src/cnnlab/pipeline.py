"""A whole experiment as `cnnlab train` runs it: train, then curves and the report, in one call.

    from cnnlab import load_experiment, run_experiment
    result = run_experiment(load_experiment("recipes/004-a.yaml", ["epochs=3"]))
    result.run_dir / "report.html"

`cnnlab.train.train` alone trains and writes the run's numbers; this layer (above train and
report) adds the figures and pages through an ordinary callback, so the loop never imports the
report code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from cnnlab.tasks import create_task
from cnnlab.train.callbacks import Callback
from cnnlab.train.experiment import ExperimentConfig
from cnnlab.train.loop import RunResult, train
from cnnlab.train.task import Task
from cnnlab.transfer import resolve_sources, teacher_from_run


class ReportWriter(Callback):
    """curves.png for every run that trained an epoch; report.html/report.md for finished runs, with
    the extra page of the run's task (siamese.html) and Grad-CAM where the task has class scores.

    A failure here is reported but never loses the run: its numbers are already saved.
    """

    def __init__(self, report: bool = True, log: Callable[[str], None] = print):
        self.report, self.log = report, log
        self.run_dir: Optional[Path] = None
        self.model = None

    def on_train_begin(self, logs: dict) -> None:
        self.run_dir = Path(logs["run_dir"])
        self.model = logs.get("model")  # the weights that are saved and evaluated (EMA's when on)

    def on_train_end(self, logs: dict) -> None:
        from cnnlab.report.curves import plot_curves
        from cnnlab.runfolder import read_metrics

        run_dir = self.run_dir or Path(logs["run_dir"])
        rows = read_metrics(run_dir)
        if rows:
            try:
                plot_curves(rows, run_dir / "curves.png", title=run_dir.name)
            except Exception as err:  # noqa: BLE001 (the run is saved; say what failed)
                self.log(f"warning: could not draw curves.png: {err}")
        if not self.report or logs.get("status") not in ("completed", "early_stopped"):
            return
        from cnnlab.report import task_pages, write_run_report
        from cnnlab.runs import load_run

        splits = logs.get("data")
        run = load_run(run_dir, splits=splits)
        images = None
        if splits is not None:
            images = {name: getattr(splits, name).images.numpy() for name in ("train", "val", "test")
                      if getattr(splits, name) is not None}
        try:
            write_run_report(run_dir, images=images, extra_sections=self._gradcam(run, splits))
        except Exception as err:  # noqa: BLE001
            self.log(f"warning: could not write the report: {err}; retry with: cnnlab report {run_dir}")
        for write_page in task_pages(run.task):
            try:
                write_page(run, log=self.log)
            except Exception as err:  # noqa: BLE001 (the run and its main report are saved)
                self.log(f"warning: could not write the {run.task_name} page: {err}")

    def _gradcam(self, run, splits) -> list:
        """Grad-CAM over the most confident wrong test images, or [] (said in the log) when it cannot
        be made: the report goes out without it rather than not at all. `splits`: the data the run
        trained on (None: no section, rather than loading the data again)."""
        test = getattr(splits, "test", None) if splits is not None else None
        if self.model is None or test is None or run.task.unsupported("explain"):
            return []
        try:
            from cnnlab.explain.report_section import gradcam_section
            from cnnlab.runfolder import read_predictions

            predictions = read_predictions(run.run_dir).get("test")
            if predictions is None:
                return []
            return [gradcam_section(self.model, run.normalizer, test.images, predictions.probs,
                                    predictions.labels, list(splits.classes), predictions.indices)]
        except Exception as err:  # noqa: BLE001 (the report is worth more than this one section)
            self.log(f"warning: no Grad-CAM section in the report: {err}")
            return []


def experiment_task(cfg: ExperimentConfig, log: Callable[[str], None] = print) -> Task:
    """The task of an experiment (cnnlab.tasks), with its teacher when `distill.teacher` names a run
    (built from the run folder when training starts)."""
    task = create_task(cfg.task)
    teacher = cfg.distill.teacher
    if teacher is not None:
        task = task.with_teacher(lambda: teacher_from_run(str(teacher)), cfg.distill.temperature, cfg.distill.alpha)
        log(f"distilling from the teacher {teacher} (temperature {cfg.distill.temperature}, "
            f"alpha {cfg.distill.alpha})")
    return task


def train_sources(cfg: ExperimentConfig, runs_dir: str | Path = "runs", *, data_dir: Optional[str] = None,
                  quiet: bool = False, report: bool = True, log: Callable[[str], None] = print) -> list[RunResult]:
    """Train the recipes named by `model.pretrained: {recipe: ...}` and `distill.teacher: {recipe: ...}`
    that have no finished run yet (what `cnnlab train --with-sources` does); their own sources first."""
    from cnnlab.train.experiment import SourceRecipe, load_experiment
    from cnnlab.transfer import newest_finished_run

    done: list[RunResult] = []
    for source in (cfg.model.pretrained, cfg.distill.teacher):
        if not isinstance(source, SourceRecipe) or newest_finished_run(source.recipe, runs_dir) is not None:
            continue
        source_cfg = load_experiment(source.recipe)
        done += train_sources(source_cfg, runs_dir, data_dir=data_dir, quiet=quiet, report=report, log=log)
        log(f"training the source {source.recipe} first (--with-sources)")
        result = run_experiment(source_cfg, runs_dir, data_dir=data_dir, quiet=quiet, report=report, log=log)
        if result.status not in ("completed", "early_stopped"):
            raise RuntimeError(f"the source {source.recipe} did not finish ({result.status}); resume it with: "
                               f"cnnlab train --resume {result.run_dir}")
        done.append(result)
    return done


def run_experiment(cfg: Optional[ExperimentConfig], runs_dir: str | Path = "runs", *, data_dir: Optional[str] = None,
                   quiet: bool = False, resume: Optional[str | Path] = None, seed_suffix: Optional[int] = None,
                   callbacks: Optional[list[Callback]] = None, report: bool = True,
                   log: Callable[[str], None] = print, **train_options) -> RunResult:
    """The whole experiment: {recipe: ...} sources resolved to their runs, the task of cnnlab.tasks
    (with its teacher), train(), then curves.png and (with report=True) report.html / report.md in
    the run folder. `train_options` go to train() (e.g. ddp_timeout)."""
    if cfg is not None:
        cfg = resolve_sources(cfg, runs_dir)
    return train(cfg, runs_dir, data_dir=data_dir, quiet=quiet, resume=resume, seed_suffix=seed_suffix,
                 callbacks=list(callbacks or []) + [ReportWriter(report=report, log=log)], log=log,
                 task_factory=lambda c: experiment_task(c, log), **train_options)


__all__ = ["ReportWriter", "experiment_task", "run_experiment", "train_sources"]
