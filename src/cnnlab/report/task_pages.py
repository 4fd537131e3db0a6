"""The extra report page of a task, beside report.html: the one place that pairs a task with its page.

Dispatch is by the task's class (a subclass inherits its parent's pages), never by its name.
A page writer takes the run's handle (cnnlab.runs.load_run) and a `log` keyword.
"""
from __future__ import annotations

from typing import Callable

from cnnlab.report.siamese_page import write_siamese_report
from cnnlab.siamese.task import SiameseTask

TASK_PAGES: dict[type, list[Callable]] = {SiameseTask: [write_siamese_report]}


def task_pages(task) -> list[Callable]:
    """The page writers of `task` (a Task instance): its class's, else its nearest parent's, else []."""
    for cls in type(task).__mro__:
        if cls in TASK_PAGES:
            return list(TASK_PAGES[cls])
    return []


__all__ = ["TASK_PAGES", "task_pages"]
