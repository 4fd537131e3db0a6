"""The task hook: classification by default, others registered by their packages."""
import pytest

from cnnlab.train.task import ClassificationTask, create_task


def test_the_default_task_is_classification():
    assert isinstance(create_task({}), ClassificationTask)
    assert isinstance(create_task({"name": "classification"}), ClassificationTask)


def test_an_unknown_task_names_the_known_ones():
    with pytest.raises(ValueError, match="known: .*classification"):
        create_task({"name": "regression"})
    with pytest.raises(ValueError, match="bad option for classification"):
        create_task({"name": "classification", "margin": 1.0})
