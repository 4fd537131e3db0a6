"""Temporary alias while the tree moves; removed before commit."""
from cnnlab.train.experiment import *  # noqa
from cnnlab.train.experiment import ConfigError, ExperimentConfig, ModelConfig, load_experiment, experiment_to_yaml, experiment_from_dict  # noqa
