"""The epochs of a run: train, validate, tell the callbacks, checkpoint; until done or stopped.

    while running: train_epoch (epoch.py) -> metrics row (validation) -> callbacks -> checkpoint
"""

from __future__ import annotations

import signal

import torch

from cnnlab.train.build import Run
from cnnlab.train.epoch import train_epoch
from cnnlab.train.regularization import l2_penalty, matching_kernels
from cnnlab.train.stages import stage_at


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop saves at the next step boundary. A second Ctrl-C aborts,
    except under DDP: there a terminal's Ctrl-C reaches each rank once directly and once more
    through torchrun, and the ranks must stop together (torchrun kills ranks that do not end)."""

    def __init__(self, second_sigint_aborts: bool = True) -> None:
        self.requested = False
        self.second_sigint_aborts = second_sigint_aborts
        self._old: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:  # noqa: ANN001
        if self.requested and signum == signal.SIGINT and self.second_sigint_aborts:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: no handlers, Ctrl-C behaves as usual
                pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def fit(run: Run) -> None:
    """Train epochs until the plan ends, a callback stops early, a signal asks, or the loss diverges;
    run.state.status then says which (running means the plan ended)."""
    state, engine, world = run.state, run.engine, run.world
    base_logs = {"run_dir": str(run.run_dir), "epochs": run.epochs, "steps_per_epoch": engine.steps_per_epoch,
                 "params": run.stages[0]["params"], "device": str(engine.device)}
    for cb in run.callbacks:
        cb.on_train_begin({**base_logs, "model": engine.eval_model})
    with StopRequest(second_sigint_aborts=not world.enabled) as stop:
        while state.status == "running" and state.epoch < run.epochs:
            epoch = state.epoch
            for cb in run.callbacks:
                cb.on_epoch_begin(epoch, {**base_logs, "first_step": state.step_in_epoch})
            outcome = train_epoch(engine, state, run.callbacks, lambda: stop.requested)
            if outcome != "done":
                state.status = outcome
                if outcome == "interrupted":
                    run.checkpoint()
                break
            # Each rank's batch norm saw its shard only: evaluate and save the ranks' mean statistics.
            world.average_buffers(engine.model)
            if engine.ema is not None:
                world.average_buffers(engine.ema.module)
            logs = epoch_row(run)
            state.end_epoch(dict(logs))
            for cb in run.callbacks:
                cb.on_epoch_end(epoch, logs)
            # Rank 0's callbacks decide early stopping; a signal on any rank stops them all.
            stop_training, interrupted = world.any(logs.get("stop_training"), stop.requested)
            if stop_training:
                state.status = "early_stopped"
            elif interrupted:
                state.status = "interrupted"
            run.checkpoint()


def epoch_row(run: Run) -> dict:
    """The metrics row of the epoch just trained. Losses come as the data loss and as the total
    with the L2 penalty, which is what Keras reports as loss and val_loss."""
    engine, sums, cfg = run.engine, run.state.sums, run.cfg
    seen, step = max(1, sums["seen"]), max(run.state.global_step - 1, 0)
    row = {"epoch": run.state.epoch + 1, "train_loss": sums["loss_sum"] / seen, "train_acc": sums["correct"] / seen,
           "val_loss": None, "val_acc": None, "train_loss_total": sums["total_loss_sum"] / seen,
           "val_loss_total": None, "lr": engine.lr(step), "stage": stage_at(engine.plan, step).name,
           "seconds": round(sums["seconds"], 3), "images_per_sec": round(sums["seen"] / max(sums["seconds"], 1e-9), 1)}
    eval_model = engine.eval_model
    if run.splits.val is not None:
        val_loss, val_acc = engine.task.score(eval_model, run.splits.val, engine)
        # The penalty of the weights just scored: the EMA's when it is evaluated, not the live model's.
        kernels = (engine.l2_kernels if eval_model is engine.model
                   else matching_kernels(engine.l2_kernels, engine.model, eval_model))
        with torch.no_grad():
            penalty = l2_penalty(kernels, cfg.regularization.l2)
        row["val_loss"], row["val_acc"] = val_loss, val_acc
        row["val_loss_total"] = val_loss + (float(penalty) if penalty is not None else 0.0)
    if cfg.monitor_test and run.splits.test is not None:
        row["test_loss"], row["test_acc"] = engine.task.score(eval_model, run.splits.test, engine)
    return row


__all__ = ["StopRequest", "epoch_row", "fit"]
