"""Experiment config: defaults -> YAML -> overrides; unknown keys and wrong types are errors."""
import pytest
import yaml

from cnnlab.config import ConfigError
from cnnlab.experiment import experiment_from_dict, experiment_to_yaml, load_experiment


def write(tmp_path, text: str):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_defaults_yaml_then_overrides(tmp_path):
    path = write(tmp_path, "epochs: 5\noptimizer: {name: sgd, lr: 0.1, momentum: 0.9}\n")
    cfg = load_experiment(path, ["optimizer.lr=0.01", "data.train_subset=1000"])
    assert cfg.name == "exp"                      # file stem when the YAML has no name
    assert cfg.epochs == 5                        # from YAML
    assert cfg.optimizer.lr == 0.01               # override wins over YAML
    assert cfg.optimizer.momentum == 0.9
    assert cfg.data.train_subset == 1000
    assert cfg.batch_size == 64                   # default


def test_unknown_key_names_it_suggests_and_lists_allowed(tmp_path):
    path = write(tmp_path, "optimizer: {name: adam, lr: 0.001, momentun: 0.9}\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    msg = str(err.value)
    assert "optimizer" in msg and "'momentun'" in msg and "Did you mean 'momentum'" in msg and "betas" in msg


def test_unknown_top_level_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'epoch'.*'epochs'"):
        load_experiment(write(tmp_path, "epoch: 3\n"))


@pytest.mark.parametrize("override, fragment", [
    ("epochs=ten", "epochs: expected an integer"),
    ("epochs=2.5", "epochs: expected an integer"),
    ("optimizer.lr=fast", "optimizer.lr: expected a number"),
    ("deterministic=3", "expected true or false"),
    ("optimizer.name=adagrad", "choose one of sgd, adam, adamw, rmsprop"),
    ("schedule.name=piecewise", "len(values) == len(milestones) + 1"),
    ("epochs=0", "epochs must be >= 1"),
    ("nosuchsection.x=1", "unknown key 'nosuchsection'"),
    ("optimizer=3", "optimizer: expected a mapping"),
])
def test_wrong_values_are_errors(override, fragment):
    with pytest.raises(ConfigError) as err:
        load_experiment(None, [override])
    assert fragment in str(err.value)


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_experiment(None, ["epochs"])


def test_yaml_scientific_notation_without_dot_is_a_number(tmp_path):
    # YAML 1.1 reads 1e-4 as a string; the loader accepts it for float fields.
    cfg = load_experiment(write(tmp_path, "regularization: {l2: 1e-4}\n"))
    assert cfg.regularization.l2 == pytest.approx(1e-4)


def test_keras_augmentation_names_map(tmp_path):
    cfg = load_experiment(write(tmp_path, "augment: {rotation_range: 15, width_shift_range: 0.1, "
                                          "height_shift_range: 0.2, horizontal_flip: true}\n"))
    assert (cfg.augment.rotation, cfg.augment.width_shift, cfg.augment.height_shift, cfg.augment.hflip) == \
        (15.0, 0.1, 0.2, True)


def test_resolved_config_round_trips():
    cfg = load_experiment(None, ["optimizer.betas=[0.8, 0.99]", "schedule.name=cosine", "model.kwargs={dropout: 0.5}"])
    again = experiment_from_dict(yaml.safe_load(experiment_to_yaml(cfg)))
    assert again == cfg


@pytest.mark.parametrize("recipe", ["004-a", "004-b", "004-c", "004-d"])
def test_shipped_recipes_load(recipe):
    from engine_helpers import REPO

    cfg = load_experiment(REPO / "recipes" / f"{recipe}.yaml")
    assert cfg.name == recipe and cfg.model.name == "cnn004"


def test_public_api_imports_in_any_order():
    import cnnlab
    from cnnlab import load_experiment as le
    from cnnlab.train import train as train_fn

    assert callable(le) and callable(train_fn) and train_fn.__name__ == "train"
    assert callable(cnnlab.create_model) and callable(cnnlab.summary)
