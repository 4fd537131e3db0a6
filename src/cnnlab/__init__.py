"""cnnlab: image-classification experiments with convolutional networks, end to end.

    from cnnlab import load_experiment, run_experiment
    result = run_experiment(load_experiment("recipes/004-a.yaml", ["epochs=3"]))   # train + report
    # the loop alone (no figures, no report): from cnnlab.train import train
"""



def __getattr__(name: str):
    # Lazy so `import cnnlab` is instant, `cnnlab --help` does not import torch, and importing a
    # leaf module (cnnlab.runfolder) loads no other cnnlab module.
    if name == "__version__":
        from cnnlab.version import __version__

        return __version__
    if name in ("load_experiment", "ExperimentConfig"):
        from cnnlab.train import experiment

        return getattr(experiment, name)
    if name == "run_experiment":
        from cnnlab.pipeline import run_experiment

        return run_experiment
    if name in ("RunResult", "TrainingDiverged"):
        from cnnlab.train import loop

        return getattr(loop, name)
    if name in ("create_model", "list_models", "count_params"):
        from cnnlab import models

        return getattr(models, name)
    if name == "summary":
        from cnnlab.models import summary

        return summary
    if name == "load_run":
        from cnnlab.runs import load_run

        return load_run
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")


__all__ = ["load_experiment", "run_experiment", "ExperimentConfig", "RunResult", "TrainingDiverged", "create_model",
           "list_models", "count_params", "summary", "load_run", "__version__"]
