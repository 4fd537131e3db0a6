"""`cnnlab data info`: dataset tools."""
from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.cli.common import add_command, add_data_dir_flag, add_out_flag


def _cmd_data_info(args: argparse.Namespace) -> int:
    from cnnlab.data import dataset_info

    print(dataset_info(args.name, args.data_dir, Path(args.out) if args.out else None))
    return 0


def register(sub) -> None:
    """Add `data` (with `data info`) to cnnlab's sub-commands."""
    d = add_command(sub, "data", "dataset tools", ["cnnlab data info cifar10 --out samples.png"])
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    di = add_command(dsub, "info", "sizes, class counts, pixel statistics and a sample grid", [
        "cnnlab data info cifar10 --out samples.png", "cnnlab data info photos/    # photos/<class>/*.jpg"])
    di.add_argument("name", help="cifar10 | cifar100 | a folder root/<class>/*.jpg")
    add_data_dir_flag(di)
    add_out_flag(di, "also write a grid of sample images to this PNG")
    di.set_defaults(func=_cmd_data_info)
