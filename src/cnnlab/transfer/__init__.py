"""Transfer learning and distillation from finished runs: source recipes resolved to their runs,
and a teacher built through the run handle. The staged fine-tuning itself (stages, frozen layers,
per-group rates) is the loop's (cnnlab.train.stages)."""
from cnnlab.transfer.sources import SourceMissing, newest_finished_run, resolve_pretrained, resolve_sources
from cnnlab.transfer.teacher import teacher_from_run

__all__ = ["SourceMissing", "newest_finished_run", "resolve_pretrained", "resolve_sources", "teacher_from_run"]
