"""`cnnlab` command line: a thin layer over the Python API, one module per command group.

    train.py    train, config                 runs.py     eval, runs, compare, report, learning-curve
    data.py     data info                     models.py   models, summary, shapes
    probe.py    layers, features, probe       explain.py  explain
    predict.py  predict, export               search.py   sweep, search

Each module has ``register(subparsers)``; ``common.py`` declares the shared flags one way
(-o/--override, --out, --device, --runs-dir, --data-dir). Heavy imports (torch, optuna) happen
inside the commands, so `cnnlab --help` stays fast.
"""
from __future__ import annotations

import argparse
import errno
import logging
import sys
from pathlib import Path

from cnnlab.atomic import output_option, unwritable_error

from cnnlab.cli import data, explain, models, predict, probe, runs, search, train
from cnnlab.cli.common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE

GROUPS = (train, runs, data, models, probe, explain, predict, search)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cnnlab", description="Image-classification experiments with CNNs, end to end.",
                                epilog="example:\n  cnnlab train recipes/004-a.yaml -o epochs=5\n"
                                       "  cnnlab <command> --help   (every command shows its own examples)",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"cnnlab {__import__('cnnlab').__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return p


def _who() -> str:
    """"cnnlab", or under torchrun "cnnlab [rank R]": each rank reports its own errors."""
    import os

    if os.environ.get("WORLD_SIZE", "1") not in ("", "1") and "RANK" in os.environ:
        return f"cnnlab [rank {os.environ['RANK']}]"
    return "cnnlab"


def _output_option(args: argparse.Namespace) -> str | None:
    """The flag that chose where this command writes, for the fix of a read-only folder's error."""
    if getattr(args, "out", None) is not None:
        return "--out"
    if getattr(args, "runs_dir", None) is not None:
        return "--runs-dir"
    return None


def _one_line(err: BaseException, args: argparse.Namespace) -> str:
    """The error as one line. A bare read-only-file-system OSError from a writer that does not name
    its target itself ("[Errno 30] Read-only file system: 'x'") says what to do instead."""
    if type(err) is OSError and err.errno == errno.EROFS and err.filename:
        with output_option(_output_option(args)):
            err = unwritable_error(Path(err.filename), err) or err
    return " ".join(str(err).split("\n"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    # matplotlib warns once per missing mathtext font (STIX, cm*) when a figure is drawn; the figures
    # fall back to DejaVu Sans and are fine, and the warnings buried a run's result block.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    args.argv = argv   # `train --nproc N` runs the same command under torchrun
    from cnnlab.config import ConfigError

    try:
        with output_option(_output_option(args)):
            return args.func(args)
    except ConfigError as err:
        print(f"{_who()}: config error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as err:
        # DataError, CheckpointError, TrainingDiverged and model errors all land here with
        # messages that name the problem and the fix; a traceback would bury them.
        print(f"{_who()}: error: {_one_line(err, args)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as err:
        from cnnlab.data import DataError

        if isinstance(err, DataError):
            print(f"{_who()}: data error: {err}", file=sys.stderr)
            return EXIT_ERROR
        raise


__all__ = ["build_parser", "main"]
