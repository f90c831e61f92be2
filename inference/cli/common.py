"""Flags shared by every ``ppx`` subcommand, and the helpers that act on them."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from inference.local import LocalSimulator
from inference.observations import as_observations, load_observation_file, parse_observe_argument
from inference.pool import SimulatorPool
from inference.remote import RemoteSimulator
from ppx.curve import ENVIRONMENT_VARIABLE, EngineKeys, key_directory


def add_common_arguments(parser: argparse.ArgumentParser, *, num_traces: int) -> None:
    """The conventions every subcommand shares: where the simulator is, how much, what is observed."""
    where = parser.add_argument_group("simulator (one of)")
    where.add_argument("--address", help="connect to a running simulator at this ZeroMQ endpoint "
                                         "(e.g. ipc:///tmp/sim.sock or tcp://127.0.0.1:5555)")
    where.add_argument("--simulator", metavar="CMD",
                       help="launch copies of this simulator command, each given its own address "
                            "(appended as --address ADDR, or substituted for {address})")
    where.add_argument("--model", metavar="MODULE:FUNCTION",
                       help="run a Python model in this process, e.g. simulators.gaussian:model")
    parser.add_argument("--surrogate", action="append", default=[], metavar="STAGE=CKPT",
                        help="answer the simulator's named stage with a trained surrogate, e.g. "
                             "shower=surrogate.ckpt from `ppx surrogate train` (repeatable)")
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="copies of --simulator to run in parallel (default 1)")
    parser.add_argument("--curve", metavar="DIR",
                        help="authenticate and encrypt the connections to simulators with the CURVE keys in DIR "
                             "(made by `ppx keys DIR`); simulators started by --simulator get them too "
                             f"(default: ${ENVIRONMENT_VARIABLE} when it is set)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds a simulator may take to answer before it counts as hung (default 30)")
    parser.add_argument("-n", "--num-traces", type=positive_int, default=num_traces,
                        help=f"number of traces (default {num_traces})")
    parser.add_argument("--observe", action="append", default=[], metavar="NAME=VALUE",
                        help="observed value for the observe statement NAME (repeatable; VALUE a "
                             "number or JSON list)")
    parser.add_argument("--observe-file", metavar="FILE",
                        help="observations from a JSON object, .npz or HDF5 file (one entry per name; in "
                             "HDF5 a sparse image is a group of coordinates, values and shape datasets)")
    parser.add_argument("--out", metavar="PATH", help="where to write the run's output file")
    parser.add_argument("--json", action="store_true",
                        help="print the run's summary as one JSON object on stdout")
    parser.add_argument("--seed", type=int,
                        help="seed the run's random choices, the simulators' prior batches included: the same "
                             "seed repeats the run whatever the number of --workers")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="torch threads in the engine (default 1: simulators run in their own "
                             "processes, and small networks lose more to thread hand-offs than they gain)")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_network_placement_arguments(parser: argparse.ArgumentParser) -> None:
    """Where an IC network trains and how it reads each observation: ``--device``, ``--embedding``."""
    parser.add_argument("--device", default="cpu", type=training_device,
                        help="where the network trains: cpu (default), cuda or cuda:N (one process; "
                             "checkpoints load on any machine)")
    parser.add_argument("--embedding", action="append", default=[], metavar="NAME=KIND",
                        help="observation embedding for an observed name: feedforward, cnn, cnn-moments, "
                             "cnn-clusters or sparse3d (default chosen by shape; repeatable)")


def training_device(text: str) -> "torch.device":
    """``--device``'s value as a torch device that this machine has."""
    import torch
    try:
        device = torch.device(text)
    except RuntimeError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use cpu, cuda or cuda:N") from err
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{text!r}: the network trains on cpu or cuda, not {device.type}")
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count or count == 0:
            raise argparse.ArgumentTypeError(
                f"{text!r}: torch {torch.__version__} sees {count} CUDA device(s) here")
    return device


def embedding_kinds(items: list[str]) -> dict[str, str]:
    """Observed name -> embedding kind from ``--embedding NAME=KIND`` arguments, kinds checked."""
    from inference.ic.embeddings import EMBEDDINGS

    kinds = {}
    for item in items:
        name, kind = split_assignment(item, "--embedding", "NAME=KIND", "calorimeter=cnn")
        if kind not in EMBEDDINGS:
            raise ValueError(f"--embedding {item}: unknown embedding {kind!r}; choose from "
                             f"{', '.join(sorted(EMBEDDINGS))}")
        kinds[name] = kind
    return kinds


def observations_from(args: argparse.Namespace) -> dict[str, np.ndarray]:
    observations = load_observation_file(args.observe_file) if args.observe_file else {}
    for item in args.observe:
        name, value = parse_observe_argument(item)
        observations[name] = value
    return as_observations(observations)


def import_callable(spec: str, flag: str, example: str) -> Any:
    """The callable ``NAME`` of module ``MODULE`` named by ``flag``'s ``MODULE:NAME``; errors name the flag."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{flag} expects MODULE:NAME (e.g. {example}), got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"{flag} {spec}: cannot import module {module_name!r}: {err}") from err
    found = getattr(module, attribute, None)
    if not callable(found):
        raise ValueError(f"{flag} {spec}: module {module_name!r} has no function or class {attribute!r}")
    return found


def split_assignment(item: str, flag: str, form: str, example: str) -> tuple[str, str]:
    """``NAME=VALUE`` from a repeatable flag; ``form`` and ``example`` word the error."""
    name, sep, value = item.partition("=")
    if not sep or not name or not value:
        raise ValueError(f"{flag} expects {form} (e.g. {example}), got {item!r}")
    return name, value


def surrogate_stages(items: list[str]) -> dict[str, Any]:
    """Stage surrogates from ``STAGE=CKPT`` arguments."""
    stages = {}
    for item in items:
        name, path = split_assignment(item, "--surrogate", "STAGE=CKPT", "shower=surrogate.ckpt")
        from inference.surrogate.serving import ShowerStage
        stages[name] = ShowerStage.load(path)
    return stages


@contextmanager
def open_simulator(args: argparse.Namespace) -> Iterator[Any]:
    """The simulator the flags name: a connection, a launched pool, or an in-process model."""
    chosen = [flag for flag in ("address", "simulator", "model") if getattr(args, flag)]
    if len(chosen) != 1:
        raise ValueError("give exactly one of --address ADDR, --simulator CMD or --model MODULE:FUNCTION "
                         "(e.g. --simulator 'python -m simulators.gaussian')"
                         + (f"; got {', '.join('--' + c for c in chosen)}" if chosen else ""))
    stages = surrogate_stages(args.surrogate)
    if args.address:
        simulator: Any = RemoteSimulator(args.address, timeout=args.timeout, stages=stages)
    elif args.simulator:
        simulator = SimulatorPool(args.simulator, workers=args.workers, timeout=args.timeout, stages=stages,
                                  reproducible=getattr(args, "seed", None) is not None)
    else:
        simulator = LocalSimulator(import_callable(args.model, "--model", "simulators.gaussian:model"), stages=stages)
    try:
        yield simulator
    finally:
        simulator.close()


def configure_process(args: argparse.Namespace) -> None:
    """Process-wide settings a command line may make: logging, torch's thread count and, under
    ``--seed``, torch's generator."""
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    import torch
    torch.set_num_threads(args.threads)
    if getattr(args, "seed", None) is not None:
        torch.manual_seed(args.seed)


@contextmanager
def curve_keys(args: argparse.Namespace) -> Iterator[None]:
    """While a command runs, ``$PPX_CURVE`` names its ``--curve DIR`` (once the engine's keys there
    are checked): every connection it opens, and every simulator or rank it starts, uses them."""
    directory = getattr(args, "curve", None)
    if not directory:
        yield
        return
    path = key_directory(directory)
    EngineKeys(path)
    previous = os.environ.get(ENVIRONMENT_VARIABLE)
    os.environ[ENVIRONMENT_VARIABLE] = str(path)
    try:
        yield
    finally:
        if previous is None:
            del os.environ[ENVIRONMENT_VARIABLE]
        else:
            os.environ[ENVIRONMENT_VARIABLE] = previous


def emit(args: argparse.Namespace, summary: dict[str, Any], table: str) -> None:
    """The run's result on stdout: one JSON object with ``--json``, else a readable table."""
    if args.json:
        json.dump(summary, sys.stdout, default=_jsonable)
        sys.stdout.write("\n")
    else:
        print(table)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
