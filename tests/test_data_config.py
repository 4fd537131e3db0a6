"""DataConfig / AugmentConfig validation and Keras alias names."""
import dataclasses

import pytest

from cnnlab.data import AugmentConfig, DataConfig


def test_defaults_are_valid():
    assert DataConfig().normalize == "per_channel"
    # Every augmentation off by default; jpeg_p acts only with jpeg_quality, flip_mode only with hflip.
    assert not any(getattr(AugmentConfig(), f.name) for f in dataclasses.fields(AugmentConfig)
                   if f.name not in ("crop_pad_mode", "jpeg_p", "flip_mode"))


def test_keras_aliases_map_onto_fields():
    aliases = AugmentConfig._aliases
    assert aliases == {"rotation_range": "rotation", "width_shift_range": "width_shift",
                       "height_shift_range": "height_shift", "horizontal_flip": "hflip"}
    field_names = {f.name for f in dataclasses.fields(AugmentConfig)}
    assert set(aliases.values()) <= field_names
    # what the loader does with a Keras-style section (report 004-c)
    keras = {"rotation_range": 15, "width_shift_range": 0.1, "height_shift_range": 0.1, "horizontal_flip": True}
    cfg = AugmentConfig(**{aliases.get(k, k): v for k, v in keras.items()})
    assert (cfg.rotation, cfg.width_shift, cfg.height_shift, cfg.hflip) == (15, 0.1, 0.1, True)


@pytest.mark.parametrize("kwargs, key", [
    ({"rotation": -5}, "augment.rotation"),
    ({"rotation": 200}, "augment.rotation"),
    ({"width_shift": 1.5}, "augment.width_shift"),
    ({"height_shift": -0.1}, "augment.height_shift"),
    ({"cutout": -1}, "augment.cutout"),
    ({"cutout": 2.5}, "augment.cutout"),
    ({"crop_padding": -4}, "augment.crop_padding"),
    ({"crop_pad_mode": "wrap"}, "augment.crop_pad_mode"),
])
def test_bad_augment_values_raise_naming_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key) as e:
        AugmentConfig(**kwargs)
    assert repr(next(iter(kwargs.values()))) in str(e.value)


@pytest.mark.parametrize("kwargs, key", [
    ({"name": "mnist"}, "data.name"),
    ({"label_mode": "medium"}, "data.label_mode"),
    ({"normalize": "minmax"}, "data.normalize"),
    ({"bad_images": "ignore"}, "data.bad_images"),
    ({"val_size": -1}, "data.val_size"),
    ({"val_size": 1.5}, "data.val_size"),
    ({"train_subset": 0}, "data.train_subset"),
    ({"test_subset": -3}, "data.test_subset"),
    ({"image_size": 0}, "data.image_size"),
    ({"folder_split": [0.6, 0.6, 0.2]}, "data.folder_split"),
    ({"folder_split": [0.5, 0.5]}, "data.folder_split"),
    ({"folder_split": [1200, 400.5, 400]}, "data.folder_split"),
    ({"folder_split": [0, 0.5, 0.5]}, "data.folder_split"),
])
def test_bad_data_values_raise_naming_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        DataConfig(**kwargs)


def test_error_lists_allowed_values():
    with pytest.raises(ValueError, match="none, unit, center, zscore, per_channel, imagenet"):
        DataConfig(normalize="minmax")


@pytest.mark.parametrize("split", [[0.6, 0.2, 0.2], [1200, 400, 400], [0.8, 0, 0.2], [1, 0, 0]])
def test_good_folder_splits(split):
    assert DataConfig(name="folder", folder_split=split).folder_split == split


@pytest.mark.parametrize("key, value", [
    ("val_size", 1.0), ("val_size", 5000.0), ("val_size", 1.5),
    ("train_subset", 1.0), ("train_subset", 2000.0), ("test_subset", 1.0),
])
def test_a_float_of_one_or_more_is_not_a_count(key, value):
    # 1.0 used to mean one image (val acc 100%); an int is a count, a float a fraction in (0, 1)
    with pytest.raises(ValueError) as e:
        DataConfig(**{key: value})
    msg = str(e.value)
    assert msg.startswith(f"data.{key}: {value!r}")
    assert "a fraction must be below 1; write an integer count such as 5000" in msg


@pytest.mark.parametrize("kwargs, key", [
    ({"val_size": float("nan")}, "data.val_size"),
    ({"val_size": -0.1}, "data.val_size"),
    ({"train_subset": 0.0}, "data.train_subset"),
    ({"test_subset": -0.5}, "data.test_subset"),
    ({"train_subset": True}, "data.train_subset"),
])
def test_bad_counts_or_fractions(kwargs, key):
    with pytest.raises(ValueError, match=key):
        DataConfig(**kwargs)


@pytest.mark.parametrize("kwargs", [{"val_size": 0}, {"val_size": 0.0}, {"val_size": 5000}, {"val_size": 0.1},
                                    {"train_subset": 1}, {"train_subset": 0.5}, {"test_subset": 0.999}])
def test_good_counts_and_fractions(kwargs):
    DataConfig(**kwargs)


def test_config_loader_keeps_the_rule(tmp_path):
    from cnnlab.config import ConfigError
    from cnnlab.train.experiment import load_experiment

    with pytest.raises(ConfigError, match=r"^data\.val_size: 1\.0 is not allowed: a fraction must be below 1"):
        load_experiment(None, ["data.val_size=1.0"])
    with pytest.raises(ConfigError, match=r"^data\.train_subset: 1000\.0 is not allowed: a fraction"):
        load_experiment(None, ["data.train_subset=1000.0"])
    cfg = load_experiment(None, ["data.val_size=5000", "data.train_subset=0.25"])
    assert (cfg.data.val_size, cfg.data.train_subset) == (5000, 0.25)
    assert isinstance(cfg.data.val_size, int)
