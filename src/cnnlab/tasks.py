"""Every task a run can train, by name: the one table.

    task: {name: siamese, loss: contrastive_half, ...}    # in an experiment; the options go to the constructor

It sits above the loop (cnnlab.train) and the task packages (cnnlab.siamese), so neither needs the
other and importing a task registers nothing: the table below is the whole list. A task of your
own: subclass cnnlab.train.task.Task (see its contract) and add it with ``register_task``.
"""

from __future__ import annotations

from typing import Callable, Optional

from cnnlab.siamese.task import SiameseTask
from cnnlab.train.task import ClassificationTask, Task

TASKS: dict[str, Callable[..., Task]] = {cls.name: cls for cls in (ClassificationTask, SiameseTask)}
DEFAULT_TASK = ClassificationTask.name


def register_task(name: str, factory: Callable[..., Task]) -> None:
    """Make `task: {name: <name>}` build `factory(**options)` (a Task subclass, usually)."""
    if name in TASKS and TASKS[name] is not factory:
        raise ValueError(f"task {name!r} is already registered")
    TASKS[name] = factory


def task_name(settings: Optional[dict]) -> str:
    """The task an experiment's `task:` section names (the default when it names none)."""
    return str((settings or {}).get("name", DEFAULT_TASK))


def create_task(settings: Optional[dict]) -> Task:
    """The task named by `task: {name: ..., options}` (classification when empty)."""
    options = dict(settings or {})
    name = options.pop("name", DEFAULT_TASK)
    if name not in TASKS:
        raise ValueError(f"task.name={name!r} is not a registered task; known: {', '.join(sorted(TASKS))}")
    try:
        return TASKS[name](**options)
    except TypeError as err:
        raise ValueError(f"task: bad option for {name} ({err})") from None


__all__ = ["DEFAULT_TASK", "TASKS", "create_task", "register_task", "task_name"]
