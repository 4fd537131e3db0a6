"""`cnnlab search` end to end: study folder, storage, this worker's trials, results, best recipe.

    runs/search-<study>/
      study.db         the Optuna study (SQLite; absent when --storage names a server)
      trials/          one ordinary run folder per trial that trained
      results.md       every trial: state, metric, size, note, parameters, run folder
      best.yaml        the best trial's config as a recipe (cnnlab train best.yaml --seeds 3)
      retrain-best-tNNNN/   --retrain-best: a one-point sweep of the best config over seeds
"""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from cnnlab.atomic import make_folder, write_text_atomically
from cnnlab.search.limits import num_classes_of
from cnnlab.search.objective import TrialSettings
from cnnlab.search.results import best_trial, results_table, write_best_recipe
from cnnlab.search.space import FirstChoices, Space, load_space
from cnnlab.search.study import (DEFAULT_HEARTBEAT_S, LocalWorkers, WorkerOutcome, counts, default_storage,
                                 is_sqlite, make_storage, open_study, requeue_dead_trials, run_worker)

RESULTS = "results.md"


@dataclass
class SearchOutcome:
    study_dir: Path
    worker: WorkerOutcome
    counts: dict
    table: str
    best_recipe: Optional[Path]
    best_number: Optional[int]
    metric: str = "val_acc"               # the space's objective
    best_value: Optional[float] = None    # the best trial's metric
    best_run: Optional[Path] = None       # the best trial's run folder

    def closing_block(self) -> str:
        """What the search achieved, printed at its end: trials, the best trial's metric, its run and
        report, the recipe to retrain it, and the results table's file."""
        c = self.counts
        lines = [f"result: study {self.study_dir.name}: {c['trained']} trials trained, {c['rejected']} rejected "
                 f"by the limits, {c['running']} running elsewhere"]
        if self.best_number is None or self.best_value is None:
            lines.append("  best trial      none completed yet; run more --trials")
        else:
            shown = f"{100 * self.best_value:.2f}%" if self.metric.endswith("_acc") else f"{self.best_value:.4f}"
            lines.append(f"  best trial      {self.best_number}: {self.metric} {shown}")
            if self.best_run is not None:
                page = self.best_run / "report.html"
                lines.append(f"  {'its run':<15} {page if page.is_file() else self.best_run}")
        if self.best_recipe is not None:
            lines.append(f"  {'recipe':<15} {self.best_recipe}   (retrain: cnnlab train {self.best_recipe} --seeds 3)")
        lines.append(f"  {'table':<15} {self.study_dir / RESULTS}")
        return "\n".join(lines)


def study_folder(runs_dir: str | Path, study_name: str) -> Path:
    if not study_name or "/" in study_name:
        raise ValueError(f"--study {study_name!r}: give a name without '/'")
    return Path(runs_dir) / f"search-{study_name}"


def run_search(space_path: str | Path, trials: int, *, runs_dir: str | Path = "runs", study_name: Optional[str] = None,
               storage: Optional[str] = None, timeout_s: Optional[float] = None, max_params: Optional[int] = None,
               pruner: Optional[str] = None, data_dir: Optional[str] = None, heartbeat_s: int = DEFAULT_HEARTBEAT_S,
               report: bool = False, log: Callable[[str], None] = print) -> SearchOutcome:
    """Join (or start) the study and run trials until it has `trials` trained ones; see study.py."""
    if trials < 0:
        raise ValueError(f"--trials {trials}: give 0 (results only) or more")
    if heartbeat_s < 1:
        raise ValueError(f"--heartbeat {heartbeat_s}: give whole seconds >= 1")
    space = load_space(space_path)
    if pruner is not None:
        space.pruner = {"name": pruner}
    study_name = study_name or space.name
    study_dir = study_folder(runs_dir, study_name)
    make_folder(study_dir)
    url = storage or default_storage(study_dir)
    limit = max_params if max_params is not None else space.max_params
    base_cfg = space.config(FirstChoices(), "check")   # data is the same in every trial
    settings = TrialSettings(space=space, study_name=study_name, trials_dir=study_dir / "trials",
                             num_classes=num_classes_of(base_cfg.data, space.num_classes), max_params=limit,
                             data_dir=data_dir, report=report, log=log)
    with ExitStack() as stack:
        study = open_study(space, study_name, make_storage(url, heartbeat_s))
        if is_sqlite(url) and stack.enter_context(LocalWorkers(study_dir)):
            requeue_dead_trials(study, log)
        before = counts(study)
        log(f"study {study_name!r} ({_where(url)}): {before['trained']} of {trials} trials trained so far; "
            f"folder {study_dir}")
        outcome = run_worker(study, settings, trials, timeout_s, log=log)
    return _finish(study, space, study_name, study_dir, outcome)


def _finish(study, space: Space, study_name: str, study_dir: Path, outcome: WorkerOutcome) -> SearchOutcome:
    table = results_table(study, space.metric)
    write_text_atomically(study_dir / RESULTS, f"# Study {study_name}\n\n{table}\n")
    recipe = write_best_recipe(study, space, study_name, study_dir / "best.yaml")
    best = best_trial(study)
    if best is None:
        return SearchOutcome(study_dir, outcome, counts(study), table, recipe, None, space.metric)
    run = best.user_attrs.get("run_dir")
    return SearchOutcome(study_dir, outcome, counts(study), table, recipe, best.number, space.metric, best.value,
                         Path(run) if run else None)


def _where(url: str) -> str:
    return url if is_sqlite(url) else url.split("://")[0] + "://" + url.rsplit("@", 1)[-1]


__all__ = ["run_search", "SearchOutcome", "study_folder"]
