"""``ppx keys DIR``: CURVE key pairs for an engine and its simulators (see ``ppx.curve``)."""

from __future__ import annotations

import argparse

from ppx.curve import AUTHORISED, ENGINE, ENVIRONMENT_VARIABLE, SIMULATOR, create_keys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "keys", help="create CURVE keys so that simulators answer only this engine",
        description="Write a key pair for the engine and one for the simulators into DIR. Give the engine "
                    "--curve DIR and each simulator --curve DIR (or set PPX_CURVE=DIR): the connection is "
                    "then encrypted and a simulator answers only engines whose public key is in DIR/"
                    f"{AUTHORISED}/. Existing keys are never overwritten.")
    parser.add_argument("directory", metavar="DIR", help="folder for the keys (created if missing)")
    parser.set_defaults(run=run, log_level="WARNING", threads=1)


def run(args: argparse.Namespace) -> int:
    directory = create_keys(args.directory)
    print(f"CURVE keys written to {directory}/:\n"
          f"  {ENGINE}.key_secret        the engine's key pair (keep it on the engine's machine)\n"
          f"  {SIMULATOR}.key_secret     the simulators' key pair (keep it on the simulators' machines)\n"
          f"  {SIMULATOR}.key            the simulators' public key (the engine checks it)\n"
          f"  {AUTHORISED}/{ENGINE}.key  the engines the simulators accept (add other engines' .key files)\n"
          f"Use them with `ppx ... --curve {directory}` and `python -m simulators.NAME --curve {directory}` "
          f"(or {ENVIRONMENT_VARIABLE}={directory}).")
    return 0
