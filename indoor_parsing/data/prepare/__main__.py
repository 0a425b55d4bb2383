"""``indoor-parsing prepare <dataset>``: convert an official download into the prepared layout (data/layout.py).

The converters are ``indoor_parsing.data.prepare.<dataset>``; ``scannet-export`` writes a .sens file's frames as
files (data/formats/sens.py).
"""

import argparse
import os
import sys
from collections.abc import Sequence

from indoor_parsing.data.formats import sens
from indoor_parsing.data.prepare import nyudv2, s3dis, scannet, sunrgbd
from indoor_parsing.io import DataFileError


def add_common_arguments(parser: argparse.ArgumentParser, src_required: bool = True) -> None:
    parser.add_argument("--src", required=src_required, default=None, help="the official download (folder or file)")
    parser.add_argument("--dst", required=True, help="output folder of the prepared layout")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="worker processes")
    parser.add_argument("--overwrite", action="store_true", help="redo every frame instead of resuming")


def main(argv: Sequence[str] | None = None) -> int:
    """``indoor-parsing prepare {nyudv2,sunrgbd,scannet,scannet-export,s3dis} ...``; returns 0 when no problems."""
    parser = argparse.ArgumentParser(prog="indoor-parsing prepare", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="dataset", required=True)
    for name, module in (("nyudv2", nyudv2), ("sunrgbd", sunrgbd), ("scannet", scannet), ("s3dis", s3dis)):
        p = sub.add_parser(name, help=module.__doc__.splitlines()[0])
        add_common_arguments(p, src_required=module is not s3dis)  # S3DIS may be point clouds only
        module.add_arguments(p)
        p.set_defaults(run=module.prepare_from_args)
    p = sub.add_parser("scannet-export", help=sens.__doc__.splitlines()[0])
    sens.add_arguments(p)
    p.set_defaults(run=sens.export_from_args)
    args = parser.parse_args(argv)
    try:
        report = args.run(args)
    except DataFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0 if report is None or report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
