"""ProgressPrinter: a live bar only on a terminal; one plain line per epoch in files and pipes."""
import io
import sys

import torch

from cnnlab.train.progress import ProgressPrinter, is_terminal

EPOCHS, STEPS, BATCH = 10, 200, 64


class TTYStream(io.StringIO):
    """A StringIO that says it is a terminal, as sys.stderr does in an interactive shell."""

    def isatty(self) -> bool:
        return True


def drive(printer: ProgressPrinter, epochs: int = EPOCHS, steps: int = STEPS) -> None:
    """The hook sequence and logs keys of a run, as the training loop sends them."""
    printer.on_train_begin({"epochs": epochs, "steps_per_epoch": steps})
    for epoch in range(epochs):
        printer.on_epoch_begin(epoch, {"first_step": 0} if epoch else {})
        for step in range(steps):
            seen = (step + 1) * BATCH
            printer.on_batch_end(step, {"loss_sum": torch.tensor(1.5 * seen), "correct": torch.tensor(seen // 2),
                                        "seen": seen, "lr": 1e-3})
        printer.on_epoch_end(epoch, {"epoch": epoch + 1, "train_loss": 1.5, "train_acc": 0.5, "val_loss": None,
                                     "val_acc": None, "lr": 1e-3, "seconds": 2.0, "images_per_sec": 6400.0})
    printer.on_train_end({})


def test_file_or_pipe_gets_one_line_per_epoch_and_no_carriage_returns():
    stream = io.StringIO()  # not a terminal, like a CI log, nohup.out or `| tee`
    drive(ProgressPrinter(log=lambda msg: print(msg, file=stream), stream=stream))
    out = stream.getvalue()
    assert "\r" not in out
    lines = out.splitlines()
    assert len(lines) == EPOCHS and out.endswith("\n")
    assert [line.split()[1] for line in lines] == [f"{e}/{EPOCHS}" for e in range(1, EPOCHS + 1)]
    assert "train loss 1.5000 acc 50.00%  val loss - acc -" in lines[0]


def test_default_stream_is_stderr_and_a_redirected_stderr_gets_no_bar(monkeypatch):
    stderr, logged = io.StringIO(), []
    monkeypatch.setattr(sys, "stderr", stderr)   # what `2> file` gives the process
    drive(ProgressPrinter(log=logged.append))
    assert stderr.getvalue() == "" and len(logged) == EPOCHS


def test_terminal_gets_a_bar_and_the_epoch_lines():
    stream, logged = TTYStream(), []
    printer = ProgressPrinter(log=logged.append, stream=stream)
    drive(printer, epochs=2, steps=50)
    bar = stream.getvalue()
    assert "\r" in bar and "epoch 1/2" in bar and "epoch 2/2" in bar and "50/50" in bar
    assert len(logged) == 2 and printer.bar is None   # bars closed at epoch end


def test_quiet_terminal_gets_no_bar():
    stream, logged = TTYStream(), []
    drive(ProgressPrinter(quiet=True, log=logged.append, stream=stream), epochs=3, steps=20)
    assert stream.getvalue() == "" and len(logged) == 3


def test_is_terminal_tolerates_odd_streams():
    closed = io.StringIO()
    closed.close()
    assert not is_terminal(closed) and not is_terminal(object()) and not is_terminal(io.StringIO())
    assert is_terminal(TTYStream())
