"""``ppx prior``: draw prior traces, summarise them, and optionally save them to HDF5."""

from __future__ import annotations

import argparse
import time

from tqdm.auto import tqdm

from inference.cli.common import add_common_arguments, emit, observations_from, open_simulator
from inference.observations import ObservedNames
from inference.posterior import Posterior
from inference.trace_file import TraceWriter

CHUNK = 10_000


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("prior", help="draw prior traces (optionally save them as HDF5)",
                                   description="Draw traces from the simulator's prior. With --out, "
                                               "they are written to an HDF5 trace file for offline training.")
    add_common_arguments(parser, num_traces=1000)
    parser.add_argument("--batch-size", type=int, default=64,
                        help="traces per message when the simulator samples whole traces (default 64)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    observations = observations_from(args)
    observed_names = ObservedNames(observations)
    started = time.perf_counter()
    traces = []

    def advance(done: list) -> None:
        observed_names.update(done)
        bar.update(len(done))

    with open_simulator(args) as simulator, \
            tqdm(total=args.num_traces, disable=args.quiet, unit="trace", desc="prior") as bar:
        writer = TraceWriter(args.out, getattr(simulator, "model_name", "")) if args.out else None
        try:
            for start in range(0, args.num_traces, CHUNK):
                chunk = simulator.prior(min(CHUNK, args.num_traces - start), observations,
                                        batch_size=args.batch_size, on_done=advance)
                if writer is not None:
                    writer.write(chunk)
                traces.extend(chunk)
            observed_names.check()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        if writer is not None:
            writer.close()
    seconds = time.perf_counter() - started
    posterior = Posterior(traces, None, engine="prior")
    summary = posterior.summary()
    summary.update(traces=len(traces), seconds=seconds, traces_per_second=len(traces) / seconds)
    if getattr(simulator, "dropped", 0):
        summary["dropped_traces"] = simulator.dropped
    if args.out:
        summary["out"] = args.out
    emit(args, summary, posterior.table() + f"\n{len(traces)} traces in {seconds:.2f} s "
                                             f"({len(traces) / seconds:.0f} traces/s)"
                                             + (f"; written to {args.out}" if args.out else ""))
    return 0
