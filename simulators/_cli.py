"""Command line shared by the bundled simulators: ``python -m simulators.NAME --address ADDR``."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Callable, Optional, Sequence

import torch

import ppx
from ppx.curve import ENVIRONMENT_VARIABLE
from ppx.errors import ProtocolError
from ppx.transport import DEFAULT_ADDRESS


def serve_main(model: Callable[[], Any], description: str, argv: Optional[Sequence[str]] = None) -> None:
    """Parse ``--address`` (and ``--curve``, ``--log-level``, ``--threads``) and serve ``model`` until
    interrupted."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--address", default=DEFAULT_ADDRESS,
                        help=f"ZeroMQ endpoint to bind (default {DEFAULT_ADDRESS}; "
                             f"use tcp://0.0.0.0:PORT only to accept remote engines, and then with --curve)")
    parser.add_argument("--curve", metavar="DIR",
                        help=f"answer only engines whose CURVE keys DIR authorises (keys from `ppx keys DIR`; "
                             f"tcp and ipc); default: ${ENVIRONMENT_VARIABLE} when it is set")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: one simulator per core scales better)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    try:
        ppx.serve(model, args.address, curve=args.curve)
    except KeyboardInterrupt:
        pass
    except (ValueError, ProtocolError) as err:
        sys.exit(f"{parser.prog}: error: {err}")
