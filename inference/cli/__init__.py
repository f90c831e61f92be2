"""The ``ppx`` command: ``ppx prior``, ``ppx posterior`` and friends share one set of flags."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from inference.cli import demo, keys, posterior, prior, surrogate, train
from inference.cli.common import configure_process, curve_keys
from ppx.errors import ProtocolError

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppx", description="Inference over simulators that speak PPX over ZeroMQ.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (prior, posterior, train, surrogate, demo, keys):
        module.add_parser(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        configure_process(args)
        with curve_keys(args):
            return args.run(args)
    except (ValueError, ProtocolError, OSError) as err:
        print(f"ppx {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ppx {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())


def _entry_point() -> None:
    sys.exit(main())
