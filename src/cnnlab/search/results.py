"""A study's results: one table of its trials, and the best trial's config as a recipe YAML.

The best config is rebuilt from the best trial's parameters with the space (the same choices give
the same config), so it can be written on any machine of a multi-machine study, not only where
the trial ran.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import optuna
from optuna.trial import FrozenTrial, TrialState

from cnnlab.atomic import write_text_atomically
from cnnlab.report.blocks import markdown_table
from cnnlab.search.space import Space
from cnnlab.train.experiment import experiment_to_yaml

PARAM_CHARS = 120   # a longer parameter list is shortened in the table (the run's config.yaml has all)


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def note(trial: FrozenTrial) -> str:
    attrs = trial.user_attrs
    if "rejected" in attrs:
        return f"rejected: {attrs['rejected']}"
    if "pruned_at_epoch" in attrs:
        return f"pruned after epoch {attrs['pruned_at_epoch']}"
    if "diverged" in attrs:
        return "diverged"
    if trial.state == TrialState.FAIL:
        retried = "interrupted" if attrs.get("interrupted") else "worker died or error"
        return f"failed ({retried})"
    retry = trial.system_attrs.get("failed_trial")
    return f"retry of trial {retry}" if retry is not None else ""


def results_table(study: optuna.Study, metric: str) -> str:
    """Markdown: every trial with its state, metric, size, note, parameters and run folder; best first."""
    trials = study.get_trials(deepcopy=False)
    sign = -1 if study.direction.name == "MAXIMIZE" else 1
    ranked = sorted(trials, key=lambda t: (t.state != TrialState.COMPLETE, sign * (t.value or 0.0), t.number))
    rows = []
    for t in ranked:
        value = "—" if t.value is None else (f"{100 * t.value:.2f}%" if metric.endswith("_acc") else f"{t.value:.4f}")
        params = t.user_attrs.get("params")
        shown = "; ".join(f"{k}={_short(v)}" for k, v in t.params.items())
        if len(shown) > PARAM_CHARS:
            shown = shown[:PARAM_CHARS - 1] + "…"
        run = t.user_attrs.get("run_dir")
        rows.append([str(t.number), t.state.name.lower(), value, "—" if params is None else f"{params:,}", note(t),
                     shown, Path(run).name if run else "—"])
    return markdown_table(["trial", "state", metric, "params", "note", "parameters", "run"], rows)


def best_trial(study: optuna.Study) -> Optional[FrozenTrial]:
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def write_best_recipe(study: optuna.Study, space: Space, study_name: str, path: Path) -> Optional[Path]:
    """The best completed trial's experiment as a recipe YAML (None while no trial completed)."""
    best = best_trial(study)
    if best is None:
        return None
    cfg = space.config(optuna.trial.FixedTrial(best.params), f"{study_name}-best")
    shown = f"{100 * best.value:.2f}%" if space.metric.endswith("_acc") else f"{best.value:.4f}"
    header = (f"# Best trial ({best.number}) of study {study_name!r} from {space.path}: {space.metric} {shown}"
              f" after {len(best.intermediate_values) or '?'} epochs, {best.user_attrs.get('params', '?')} params.\n"
              f"# Retrain it over seeds with: cnnlab train {path} --seeds 3\n")
    return write_text_atomically(path, header + experiment_to_yaml(cfg))


__all__ = ["results_table", "write_best_recipe", "best_trial", "note"]
