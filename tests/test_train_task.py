"""The task table (cnnlab.tasks): classification by default, every task listed in one place."""
import pytest

from cnnlab.tasks import create_task
from cnnlab.train.task import ClassificationTask


def test_the_default_task_is_classification():
    assert isinstance(create_task({}), ClassificationTask)
    assert isinstance(create_task({"name": "classification"}), ClassificationTask)


def test_an_unknown_task_names_the_known_ones():
    with pytest.raises(ValueError, match="known: .*classification"):
        create_task({"name": "regression"})
    with pytest.raises(ValueError, match="bad option for classification"):
        create_task({"name": "classification", "margin": 1.0})


def test_the_loop_alone_trains_the_default_task_and_names_the_way_to_others():
    from cnnlab.train.task import classification_only

    assert isinstance(classification_only({}), ClassificationTask)
    with pytest.raises(ValueError, match="cnnlab.run_experiment"):
        classification_only({"name": "siamese"})


def test_a_task_says_which_commands_mean_nothing_for_it():
    from cnnlab.train.task import NotMeaningful

    siamese = create_task({"name": "siamese"})
    for command in ("predict", "export", "explain", "teacher", "source"):
        with pytest.raises(NotMeaningful) as err:
            siamese.require(command)
        assert "\n" not in str(err.value) and "siamese" in str(err.value)
    for command in ("eval", "probe", "report", "compare"):
        siamese.require(command)
        create_task({}).require(command)
    with pytest.raises(NotMeaningful, match="cannot learn from a teacher"):
        siamese.with_teacher(lambda: None, 4.0, 0.9)
