"""Flags shared by the commands, declared one way everywhere, and the parser of one command.

    -o/--override KEY=VALUE   a config override, nothing else (train, config, sweep)
    --out PATH                where a command writes its output (file or folder)
    --device auto|cpu|cuda    where a run's model runs (auto: CUDA when present), on every command that runs one
    --runs-dir DIR            where run folders are made, on every command that makes runs
    --data-dir DIR            where the dataset is, on every command that loads data
    --tta [VIEWS]             test-time augmentation, on the commands that score or predict with a run
"""
from __future__ import annotations

import argparse
from typing import Optional

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DEVICES = ("auto", "cpu", "cuda")
# train/predict.py's TTA_MODES, written out so that parsing the command line imports no torch (a test keeps them equal).
TTA_CHOICES = ("flip", "flip+translate", "airbench")


def add_command(subparsers, name: str, help: str, examples: list[str], description: Optional[str] = None,
                ) -> argparse.ArgumentParser:
    """A sub-command whose --help ends with example command lines (kept as written)."""
    epilog = ("examples:\n" if len(examples) > 1 else "example:\n") + "\n".join(f"  {line}" for line in examples)
    return subparsers.add_parser(name, help=help, description=description or help[:1].upper() + help[1:] + ".",
                                 epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_override_flag(parser: argparse.ArgumentParser, what: str = "the config") -> None:
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a key of {what}, e.g. -o optimizer.lr=0.01 -o epochs=5 (repeatable)")


def add_out_flag(parser: argparse.ArgumentParser, help: str, default: Optional[str] = None) -> None:
    parser.add_argument("--out", default=default, metavar="PATH", help=help)


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=DEVICES,
                        help="where the model runs: auto (CUDA when present, else CPU; the default), cpu or cuda")


def add_tta_flag(parser: argparse.ArgumentParser, lead: str) -> None:
    parser.add_argument("--tta", nargs="?", const="flip", default=False, choices=TTA_CHOICES,
                        help=lead + "--tta averages each image with its left-right mirror; --tta flip+translate adds "
                        "both shifted 1 px up-left and down-right (6 views); --tta airbench scores those 6 views as "
                        "airbench94 does (logits averaged, the unshifted pair weighing 1/2)")


def add_runs_dir_flag(parser: argparse.ArgumentParser, what: str = "run folders are made") -> None:
    parser.add_argument("--runs-dir", default="runs", metavar="DIR", help=f"where {what} (default: runs)")


def add_data_dir_flag(parser: argparse.ArgumentParser, for_run: bool = False) -> None:
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="where the run's dataset is (default: as for training)" if for_run else
                        "folder holding the dataset (else $CNNLAB_DATA, else the cache)")


def add_run_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a run folder (made by cnnlab train)")


def device_of(args: argparse.Namespace) -> str:
    """The --device value as a torch device name ("auto" resolved; "cuda" without a GPU is an error)."""
    from cnnlab.train.runtime import resolve_device

    try:
        return str(resolve_device(args.device))
    except ValueError:
        raise ValueError(f"--device {args.device}: no CUDA device is available here; use --device cpu or auto") \
            from None


def positive(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: give a positive number")
    return value


__all__ = ["DEVICES", "EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_USAGE", "add_command", "add_data_dir_flag",
           "add_device_flag", "add_out_flag", "add_override_flag", "add_run_arg", "add_runs_dir_flag", "device_of",
           "positive"]
