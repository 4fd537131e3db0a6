"""Grid axes, sweep plans, search-space files and durations: parsing and errors (no training)."""
from __future__ import annotations

import pytest

from cnnlab.search.duration import parse_duration
from cnnlab.search.grid import expand, parse_grid_option, split_values
from cnnlab.search.space import SpaceError, load_space
from cnnlab.search.sweep_folder import plan_sweep
from test_search_helpers import tiny_experiment, tiny_space, write_yaml


def test_the_grid_is_the_cartesian_product_first_axis_slowest():
    axes = [parse_grid_option("batch_size=128,64"),
            parse_grid_option("model.kwargs.dropout1+model.kwargs.dropout2=0.5,0.2"),
            parse_grid_option("regularization.l2=0.005,0.0025")]
    points = expand(axes)
    assert len(points) == 8
    assert points[0] == ["batch_size=128", "model.kwargs.dropout1=0.5", "model.kwargs.dropout2=0.5",
                         "regularization.l2=0.005"]
    assert points[-1] == ["batch_size=64", "model.kwargs.dropout1=0.2", "model.kwargs.dropout2=0.2",
                          "regularization.l2=0.0025"]
    assert len({tuple(p) for p in points}) == 8


def test_values_are_yaml_and_brackets_keep_their_commas():
    assert split_values("[0.9,0.99],[0.5, 0.9],'a,b'") == ["[0.9,0.99]", "[0.5, 0.9]", "'a,b'"]
    axis = parse_grid_option("optimizer.betas=[0.9,0.99],[0.5,0.9]")
    assert axis.values == ([0.9, 0.99], [0.5, 0.9])
    assert parse_grid_option("optimizer.name=adam,sgd").values == ("adam", "sgd")
    # a string that would read back as another type when written bare is quoted
    assert expand([parse_grid_option("description='1.5',adam")]) == [['description="1.5"'], ["description=adam"]]


@pytest.mark.parametrize("text, words", [
    ("batch_size", "key=v1,v2"),
    ("batch_size=", "empty value"),
    ("batch_size=64,64", "twice"),
    ("seed=1,2", "--seeds"),
    ("a..b=1", "not a config key"),
])
def test_bad_grid_options_say_what_to_write(text, words):
    with pytest.raises(ValueError, match=words):
        parse_grid_option(text)


def test_a_bad_grid_value_fails_before_any_folder_exists(tmp_path):
    exp = tiny_experiment(tmp_path / "exp.yaml")
    with pytest.raises(ValueError, match="batch_size"):
        plan_sweep(exp, ["batch_size=64,big"], [], None, tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_same_command_finds_its_sweep_and_another_grid_gets_a_new_one(tmp_path):
    exp = tiny_experiment(tmp_path / "exp.yaml")
    first, created = plan_sweep(exp, ["batch_size=16,32"], [], None, tmp_path / "runs")
    again, created_again = plan_sweep(exp, ["batch_size=16,32"], [], None, tmp_path / "runs")
    other, created_other = plan_sweep(exp, ["batch_size=16,64"], [], None, tmp_path / "runs")
    assert created and not created_again and created_other
    assert again.folder == first.folder != other.folder
    assert [p["overrides"] for p in first.points] == [["batch_size=16"], ["batch_size=32"]]
    with pytest.raises(ValueError, match="another sweep"):
        plan_sweep(exp, ["batch_size=16,64"], [], None, tmp_path / "runs", name=first.folder.name)


def test_a_sweep_spec_file_gives_experiment_grid_and_seeds(tmp_path):
    tiny_experiment(tmp_path / "exp.yaml")
    spec = write_yaml(tmp_path / "sweep.yaml", {"experiment": "exp.yaml", "grid": {"epochs": [1, 2]}, "seeds": 2})
    sweep, _ = plan_sweep(spec, ["optimizer.lr=0.1,0.01"], ["batch_size=8"], None, tmp_path / "runs", name="s")
    assert sweep.seeds == 2 and len(sweep.points) == 4 and sweep.folder.name == "s"
    assert sweep.points[1]["overrides"] == ["epochs=1", "optimizer.lr=0.01"]
    assert sweep.point_config(sweep.points[1], 5).batch_size == 8
    write_yaml(tmp_path / "bad.yaml", {"experiment": "exp.yaml", "grid": {"epochs": [1]}, "seed": 2})
    with pytest.raises(ValueError, match="unknown key"):
        plan_sweep(tmp_path / "bad.yaml", [], [], None, tmp_path / "runs")


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2 hours", "h", "-5", "0"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="--timeout"):
        parse_duration(text)


@pytest.mark.parametrize("sections, words", [
    ({"params": {"optimizer.lrr": [0.1]}}, "Did you mean 'lr'"),
    ({"architecture": {"blocks": ["plain"]}}, "Did you mean 'block'"),
    ({"objective": {"metric": "test_acc"}}, "never"),
    ({"params": {"optimizer.lr": {"low": 0.1, "high": 0.01}}}, "above high"),
    ({"params": {"optimizer.lr": {"low": 0, "high": 0.1, "log": True}}}, "low > 0"),
    ({"limits": {"max_params": -3}}, "positive integer"),
    ({"sampler": {"name": "cmaes"}}, "tpe"),
    ({"architecture": {"block": "plain"}, "params": {"model.name": "cnn004"}}, "keep one"),
])
def test_bad_spaces_name_the_key(tmp_path, sections, words):
    with pytest.raises(SpaceError, match=words):
        load_space(tiny_space(tmp_path / "space.yaml", **sections))


def test_a_space_needs_a_validation_split(tmp_path):
    with pytest.raises(SpaceError, match="val_size"):
        load_space(tiny_space(tmp_path / "space.yaml", base={"data": {"name": "cifar10", "val_size": 0}}))
