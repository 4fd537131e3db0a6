"""Experiment config: defaults -> YAML -> overrides; unknown keys and wrong types are errors."""
import pytest
import yaml

from cnnlab.config import ConfigError
from cnnlab.train.experiment import experiment_from_dict, experiment_to_yaml, load_experiment


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


def test_override_names_a_list_item_by_position(tmp_path):
    """`-o stages.0.epochs=300` (the README's 002-d and 000-c commands) reaches into the stage list."""
    path = write(tmp_path, "stages:\n  - {name: head, epochs: 3, trainable: head}\n  - {epochs: 5, trainable: all}\n")
    cfg = load_experiment(path, ["stages.0.epochs=30", "stages.1.lr=0.001"])
    assert [s.epochs for s in cfg.stages] == [30, 5] and cfg.stages[1].lr == 0.001 and cfg.stages[0].name == "head"
    with pytest.raises(ConfigError, match=r"'2' is not an item of a list of 2 \(positions 0..1\)"):
        load_experiment(path, ["stages.2.epochs=3"])
    with pytest.raises(ConfigError, match=r"name an item by position, e.g. stages.0.epochs"):
        load_experiment(path, ["stages.epochs=3"])


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


@pytest.mark.parametrize("override, key", [
    ("optimizer.lr=inf", "optimizer.lr"),
    ("optimizer.lr=.inf", "optimizer.lr"),
    ("optimizer.lr=-.inf", "optimizer.lr"),
    ("regularization.grad_clip=nan", "regularization.grad_clip"),
    ("regularization.grad_clip=.nan", "regularization.grad_clip"),
    ("optimizer.lr=1e999", "optimizer.lr"),
    ("optimizer.lr=1" + "0" * 400, "optimizer.lr"),  # an int too big for a float
    ("optimizer.betas=[0.9, .nan]", "optimizer.betas[1]"),
    ("data.val_size=.inf", "data.val_size"),  # a Union[int, float] field
])
def test_non_finite_numbers_are_rejected_naming_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        load_experiment(None, [override])
    assert str(err.value).startswith(f"{key}: ") and "not a finite number" in str(err.value)


def test_non_finite_numbers_in_yaml_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match=r"^optimizer\.lr: inf is not a finite number"):
        load_experiment(write(tmp_path, "optimizer: {name: sgd, lr: .inf}\n"))
    with pytest.raises(ConfigError, match=r"^regularization\.grad_clip: nan is not a finite number"):
        load_experiment(write(tmp_path, "regularization:\n  grad_clip: .NaN\n"))


@pytest.mark.parametrize("override, key", [
    ("seed=99999999999999999999", "seed"),
    ("seed=-9223372036854775809", "seed"),
    ("epochs=1.0e+30", "epochs"),  # an integer-valued float, converted then range-checked
    ("data.train_subset=99999999999999999999", "data.train_subset"),  # not read as a float 1e20
])
def test_huge_integers_name_the_key_and_the_range(override, key):
    with pytest.raises(ConfigError) as err:
        load_experiment(None, [override])
    msg = str(err.value)
    assert msg.startswith(f"{key}: ") and "out of range" in msg and "-2**63..2**63-1" in msg


def test_largest_and_negative_seeds_torch_accepts_are_kept():
    import torch

    for seed in (2**63 - 1, -1, -(2**63)):
        assert load_experiment(None, [f"seed={seed}"]).seed == seed
        torch.Generator().manual_seed(seed)  # what the trainer does with it: no overflow


def test_duplicate_yaml_key_names_key_file_and_line(tmp_path):
    path = write(tmp_path, "epochs: 3\noptimizer:\n  name: sgd\n  lr: 0.1\n  momentum: 0.9\n  lr: 0.5\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    msg = str(err.value)
    assert str(path) in msg and "line 6" in msg and "duplicate key 'lr'" in msg and "line 4" in msg


def test_duplicate_top_level_key_and_in_override(tmp_path):
    with pytest.raises(ConfigError, match=r"line 3: duplicate key 'epochs' \(first on line 1\)"):
        load_experiment(write(tmp_path, "epochs: 3\nseed: 1\nepochs: 5\n"))
    with pytest.raises(ConfigError, match="duplicate key 'dropout'"):
        load_experiment(None, ["model.kwargs={dropout: 0.5, dropout: 0.1}"])


def test_same_key_in_different_sections_and_merge_overrides_are_fine(tmp_path):
    cfg = load_experiment(write(tmp_path, "optimizer: {name: sgd, lr: 0.1}\nschedule: {name: constant}\n"
                                          "model:\n  kwargs: &k {dropout: 0.5}\n"
                                          "logging:\n  other:\n    <<: *k\n    dropout: 0.1\n"))
    assert cfg.optimizer.lr == 0.1 and cfg.model.kwargs == {"dropout": 0.5}
    assert cfg.logging == {"other": {"dropout": 0.1}}
