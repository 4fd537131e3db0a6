"""The training engine: config sections, the loop, checkpoints, schedules, callbacks."""
from cnnlab.train.options import EarlyStoppingConfig, OptimizerConfig, RegularizationConfig, ScheduleConfig

__all__ = ["EarlyStoppingConfig", "OptimizerConfig", "RegularizationConfig", "ScheduleConfig", "train", "RunResult",
           "TrainingDiverged"]


def __getattr__(name: str):
    # The loop imports data/models; load it lazily so `cnnlab.train.options` stays light.
    if name in ("train", "RunResult", "TrainingDiverged"):
        from cnnlab.train import loop

        return getattr(loop, name)
    raise AttributeError(name)
