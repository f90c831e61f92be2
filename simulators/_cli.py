"""Command line shared by the bundled simulators: ``python -m simulators.NAME --address ADDR``."""

from __future__ import annotations

import argparse
import logging
from typing import Any, Callable, Optional, Sequence

import ppx
from ppx.transport import DEFAULT_ADDRESS


def serve_main(model: Callable[[], Any], description: str, argv: Optional[Sequence[str]] = None) -> None:
    """Parse ``--address`` (and ``--log-level``) and serve ``model`` until interrupted."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--address", default=DEFAULT_ADDRESS,
                        help=f"ZeroMQ endpoint to bind (default {DEFAULT_ADDRESS}; "
                             f"use tcp://0.0.0.0:PORT only to accept remote engines)")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")
    try:
        ppx.serve(model, args.address)
    except KeyboardInterrupt:
        pass
