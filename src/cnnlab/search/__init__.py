"""Sweeps and searches: many whole experiments, each an ordinary run folder (layer 9).

    cnnlab sweep recipes/002-a-sweep.yaml              # a grid of runs, resumable (sweep.py)
    cnnlab search recipes/search/cifar10-50k.yaml --trials 50   # Optuna over a declared space (study.py)
    cnnlab train recipes/004-a.yaml --seeds 3          # one point over 3 seeds, resumable (seeds.run_seeds)

Only the CLI imports this package; it imports pipeline, report, runs, train, models and data.
Optuna is imported by the modules that need it (study.py, objective.py), not here, so
``import cnnlab.search`` stays cheap.
"""
