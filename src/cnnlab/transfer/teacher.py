"""A distillation teacher from a finished run, through the run handle (`distill.teacher`)."""

from __future__ import annotations

from pathlib import Path

from cnnlab.runfolder import RunFolderError
from cnnlab.runs import NotMeaningful, load_run
from cnnlab.train.checkpoint import CheckpointError
from cnnlab.train.teacher import Teacher, TeacherError


def teacher_from_run(run_dir: str | Path, device: str = "cpu") -> Teacher:
    """The frozen network of the finished run `run_dir`, with its classes, image size and input
    statistics (checked against the student when training binds it)."""
    run_dir = Path(run_dir)
    key = f"distill.teacher={str(run_dir)!r}"
    if not run_dir.is_dir():
        raise TeacherError(f"{key}: no such run folder; give a finished run folder or {{recipe: recipes/<id>.yaml}}")
    try:
        run = load_run(run_dir, device=device)
        run.require("teacher")
        normalizer = run.normalizer
        model = run.model
    except NotMeaningful as err:
        raise TeacherError(f"{key}: {err}") from None
    except RunFolderError as err:
        if "did not finish" in str(err):
            raise TeacherError(f"{key}: {err}; the teacher run must have finished (cnnlab train --resume "
                               f"{run_dir} finishes it)") from None
        raise TeacherError(f"{key}: cannot read the run ({err})") from None
    except CheckpointError as err:
        raise TeacherError(f"{key}: {err}; the teacher run must have finished (cnnlab train --resume "
                           f"{run_dir} finishes it)") from None
    except ValueError as err:
        raise TeacherError(f"{key}: cannot read the run ({err})") from None
    return Teacher(model, normalizer, run_dir, classes=run.classes, input_size=run.input_size)


__all__ = ["teacher_from_run"]
