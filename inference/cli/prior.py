"""``ppx prior``: draw prior traces, summarise them, and optionally save them to HDF5.

``--out FILE`` writes one trace file, whole or not at all. ``--out DIR --shard-size N``
writes numbered shards of N traces (``inference.trace_shards``), each complete on its
own, so that a run stopped by a full disk or a crash keeps what it finished and the
same command run again writes only the missing shards.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from typing import Any, Callable, Optional

from tqdm.auto import tqdm

from inference.atomic_file import OutOfSpace
from inference.cli.common import add_common_arguments, emit, observations_from, open_simulator, positive_int
from inference.observations import ObservedNames
from inference.posterior import Posterior
from inference.trace import Trace
from inference.trace_file import PRECISIONS, write_traces
from inference.trace_shards import Shard, plan_shards

Draw = Callable[[int, Optional[int]], list[Trace]]
"""``draw(count, part)``: ``count`` traces; ``part`` (a shard's number) varies their seed."""
Save = Callable[[str, list[Trace]], None]
COMPRESSION_CHOICES = ("lzf", "gzip", "none")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("prior", help="draw prior traces (optionally save them as HDF5)",
                                   description="Draw traces from the simulator's prior. With --out, "
                                               "they are written to an HDF5 trace file for offline training.")
    add_common_arguments(parser, num_traces=1000)
    parser.add_argument("--batch-size", type=int, default=64,
                        help="traces per message when the simulator samples whole traces (default 64)")
    parser.add_argument("--shard-size", type=positive_int, metavar="N",
                        help="make --out a directory of trace files of N traces each (prior-000000.h5, ...), "
                             "each written whole; running the same command again writes only missing shards")
    parser.add_argument("--compression", choices=COMPRESSION_CHOICES, default="lzf",
                        help="HDF5 filter for --out: lzf (default; tau traces shrink 2.3x for about 40%% "
                             "more writing time), gzip (a little smaller, twice lzf's time) or none")
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default="float64",
                        help="element type of the values and distribution parameters in --out: float64 "
                             "(default; exact) or float32 (half the size of an image's traces, and all an IC "
                             "network reads, which embeds observations in float32)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    observations = observations_from(args)
    if args.shard_size and not args.out:
        raise ValueError("--shard-size N needs --out DIR: the directory the shards are written to")
    if args.precision != "float64" and not args.out:
        raise ValueError(f"--precision {args.precision} is only used with --out PATH: the trace file it sets")
    shards = plan_shards(args.out, args.num_traces, args.shard_size) if args.shard_size else []
    missing = [shard for shard in shards if not shard.complete]
    if shards and not missing:
        emit(args, {"traces": 0, "out": args.out, "shards": len(shards), "shards_written": 0},
             f"all {len(shards)} shards of {args.out} are complete; nothing to draw")
        return 0
    observed_names = ObservedNames(observations)
    started = time.perf_counter()
    total = sum(shard.num_traces for shard in missing) if shards else args.num_traces
    with open_simulator(args) as simulator, \
            tqdm(total=total, disable=args.quiet, unit="trace", desc="prior") as bar:
        def advance(done: list[Trace]) -> None:
            observed_names.update(done)
            bar.update(len(done))

        def draw(count: int, part: Optional[int]) -> list[Trace]:
            # Each shard's traces come from the run's seed and the shard's number, so that a
            # resumed run draws its missing shards as the first run would have.
            seed = args.seed if args.seed is None or part is None else (args.seed, part)
            return simulator.prior(count, observations, batch_size=args.batch_size, on_done=advance, seed=seed)

        save = functools.partial(write_traces, model_name=getattr(simulator, "model_name", ""),
                                 compression=None if args.compression == "none" else args.compression,
                                 precision=args.precision)
        if shards:
            traces = _write_shards(args.out, shards, missing, draw, save)
        else:
            traces = _draw_to_file(args.out, args.num_traces, draw, save)
        observed_names.check()
    seconds = time.perf_counter() - started
    posterior = Posterior(traces, None, engine="prior")
    summary: dict[str, Any] = posterior.summary()
    summary.update(traces=total, seconds=seconds, traces_per_second=total / seconds)
    if getattr(simulator, "dropped", 0):
        summary["dropped_traces"] = simulator.dropped
    if args.out:
        summary["out"] = args.out
    written = f"; written to {args.out}" if args.out else ""
    if shards:
        summary.update(shards=len(shards), shards_written=len(missing), summarised_traces=len(traces))
        written += (f" ({len(missing)} of {len(shards)} shards; the table summarises the last shard's "
                    f"{len(traces)} traces)")
    emit(args, summary, posterior.table() + f"\n{total} traces in {seconds:.2f} s "
                                             f"({total / seconds:.0f} traces/s){written}")
    return 0


def _draw_to_file(path: str | None, num_traces: int, draw: Draw, save: Save) -> list[Trace]:
    """Draw ``num_traces`` traces, written to the one file ``path`` (if given) as a whole or not at all."""
    traces = draw(num_traces, None)
    if path:
        try:
            save(path, traces)
        except OutOfSpace as err:
            raise OutOfSpace(err.path, err.cause,
                             f"no traces were saved ({path} is written whole or not at all; "
                             f"--out DIR --shard-size N keeps every completed shard)") from err
    return traces


def _write_shards(directory: str, shards: list[Shard], missing: list[Shard], draw: Draw,
                  save: Save) -> list[Trace]:
    """Draw and write each missing shard in turn, returning the last one's traces (memory stays one
    shard's worth, however big the dataset); a full disk stops with what is saved named."""
    os.makedirs(directory, exist_ok=True)
    chunk: list[Trace] = []
    for shard in missing:
        chunk = draw(shard.num_traces, shard.index)
        try:
            save(shard.path, chunk)
        except OutOfSpace as err:
            saved = [s for s in shards if s.complete]
            raise OutOfSpace(err.path, err.cause,
                             f"{sum(s.num_traces for s in saved)} of {sum(s.num_traces for s in shards)} "
                             f"traces are saved in {directory} ({len(saved)} of {len(shards)} shards); free "
                             f"some space and run the same command again to write the rest") from err
    return chunk

