"""``ppx train``: train an IC proposal network online from simulators or offline from trace files."""

from __future__ import annotations

import argparse
import time
from contextlib import ExitStack
from typing import Any, Optional

from inference.cli.common import (add_common_arguments, add_network_placement_arguments, configure_process,
                                  embedding_kinds, emit, open_simulator, positive_int)
from inference.ic import NetworkConfig, OfflineSource, OnlineSource, Trainer, TrainingConfig
from inference.ic.checkpoint import checkpoint_progress
from inference.trace_shards import dataset_paths


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train an inference-compilation proposal network",
        description="Train the IC network on prior traces: online from a simulator (--simulator/--address/"
                    "--model), or offline from HDF5 trace files written by `ppx prior --out` (--dataset). "
                    "Checkpoints go to --out and resume with --resume.")
    add_common_arguments(parser, num_traces=50_000)
    parser.add_argument("--dataset", nargs="+", metavar="FILE",
                        help="HDF5 trace files to train on instead of a simulator: paths, globs, or "
                             "directories of shards from `ppx prior --shard-size`")
    parser.add_argument("--resume", action="store_true", help="continue training the checkpoint at --out")
    parser.add_argument("--batch-size", type=int, default=64, help="traces per training step (default 64)")
    parser.add_argument("--learning-rate", type=float, default=TrainingConfig.learning_rate,
                        help=f"Adam learning rate (default {TrainingConfig.learning_rate:g})")
    parser.add_argument("--validation-size", type=int, default=256, help="held-out traces (default 256)")
    parser.add_argument("--checkpoint-every", type=float, default=300.0,
                        help="seconds between checkpoints (default 300; one is always written at the end)")
    parser.add_argument("--lstm-dim", type=int, default=128, help="LSTM hidden size (default 128)")
    parser.add_argument("--observation-dim", type=int, default=64,
                        help="observation embedding size (default 64)")
    parser.add_argument("--components", type=int, default=5, help="proposal mixture components (default 5)")
    add_network_placement_arguments(parser)
    _add_distributed_arguments(parser)
    parser.set_defaults(run=run)


def _add_distributed_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "data-parallel training",
        "--batch-size is the global batch, split evenly over the ranks. Under torchrun (RANK and WORLD_SIZE "
        "set) this command runs as one rank. Online, every rank launches its own --simulator pool; an "
        "--address may name each rank's simulator with {rank} or {local_rank}.")
    group.add_argument("--nproc", type=positive_int, default=1,
                       help="train with this many processes on this machine (default 1)")
    group.add_argument("--backend", choices=("auto", "gloo", "nccl"), default="auto",
                       help="torch.distributed backend (default auto: gloo, as the network trains on CPU)")
    group.add_argument("--collective-timeout", type=float, default=300.0,
                       help="seconds a rank waits for the others before failing (default 300)")
    group.add_argument("--optimizer", choices=("adam", "lamb", "larc"), default="adam",
                       help="adam (default), or a layer-wise adaptive large-batch optimizer")
    group.add_argument("--lr-scaling", choices=("none", "linear", "sqrt"), default="none",
                       help="scale --learning-rate by the global batch over --reference-batch-size "
                            "(default none)")
    group.add_argument("--reference-batch-size", type=positive_int, default=64,
                       help="batch size at which --learning-rate was tuned (default 64)")
    group.add_argument("--warmup-steps", type=int, default=0,
                       help="steps of linear learning-rate warm-up (default 0)")


def run(args: argparse.Namespace) -> int:
    if not args.out:
        raise ValueError("--out PATH is required: where the network checkpoint is written")
    from inference.ic.distributed import launch_local, ranks_from_environment
    as_rank = ranks_from_environment() is not None or _large_batch_options(args) != _large_batch_options(None)
    if (args.nproc > 1 or as_rank) and args.device.type != "cpu":
        raise ValueError(f"--device {args.device} trains in one process; data-parallel training (--nproc, "
                         f"torchrun, --optimizer, --lr-scaling, --warmup-steps) runs on the CPU")
    if args.nproc > 1:
        if args.address and args.address == args.address.format(rank=0, local_rank=0):
            raise ValueError("with --nproc, --address must name each rank's simulator with {rank} (e.g. "
                             "ipc:///tmp/sim{rank}.sock), or use --simulator CMD to give each rank a pool")
        if ranks_from_environment() is not None:
            raise ValueError("--nproc starts its own ranks; under torchrun give --nproc-per-node to torchrun")
        launch_local(args.nproc, _run_rank, args)
        return 0
    if as_rank:
        return _train_as_rank(args)
    training = TrainingConfig(batch_size=args.batch_size, learning_rate=args.learning_rate,
                              validation_size=args.validation_size, checkpoint_every=args.checkpoint_every)
    network = NetworkConfig(lstm_dim=args.lstm_dim, observation_dim=args.observation_dim,
                            components=args.components, embeddings=embedding_kinds(args.embedding))
    started = time.perf_counter()
    with ExitStack() as stack:
        if args.dataset:
            paths = dataset_paths(args.dataset)
            source = OfflineSource(paths, args.batch_size, seed=args.seed)
        else:
            simulator = stack.enter_context(open_simulator(args))
            source = OnlineSource(simulator, args.batch_size, seed=_online_seed(args))
        stack.callback(source.close)
        trainer = Trainer(source, network, training, checkpoint=args.out, resume=args.resume, device=args.device)
        progress = trainer.train(args.num_traces, progress_bar=not args.quiet)
    _report(args, trainer, progress, time.perf_counter() - started)
    return 0


def _online_seed(args: argparse.Namespace, rank: int = 0) -> Optional[tuple[int, ...]]:
    """The seed of the traces an online run draws: --seed, the rank, and on --resume the traces
    already trained on, so that a resumed run goes on to fresh traces instead of drawing again
    those it began with. None (torch's generator) without --seed."""
    if args.seed is None:
        return None
    done = checkpoint_progress(args.out).get("traces", 0) if args.resume else 0
    return args.seed, rank, int(done)


def _report(args: argparse.Namespace, trainer: Trainer, progress: dict[str, Any], seconds: float,
            **extra: Any) -> None:
    summary = {
        "traces": progress["traces"], "steps": progress["steps"], "seconds": seconds,
        "traces_per_second": progress["traces"] / max(progress["seconds"], 1e-9),
        "loss": progress["loss"][-1][1] if progress["loss"] else None,
        "validation_loss": progress["validation"][-1][1] if progress["validation"] else None,
        "validation": progress["validation"],
        "addresses": len(trainer.network.addresses), "out": args.out, **extra,
    }
    table = (f"trained on {summary['traces']} traces in {seconds:.1f} s; addresses {summary['addresses']}; "
             f"validation loss {summary['validation_loss']:.4f}; network written to {args.out}")
    emit(args, summary, table)


def _large_batch_options(args: argparse.Namespace | None) -> tuple:
    if args is None:
        return ("adam", "none", 0)
    return (args.optimizer, args.lr_scaling, args.warmup_steps)


def _run_rank(args: argparse.Namespace) -> None:
    """One rank started by ``--nproc``: like ``ppx`` itself, report errors on stderr and exit 2."""
    import sys

    from ppx.errors import ProtocolError
    configure_process(args)
    try:
        code = _train_as_rank(args)
    except (ValueError, ProtocolError, OSError) as err:
        print(f"ppx train: error: {err}", file=sys.stderr)
        code = 2
    if code:
        sys.exit(code)


def _train_as_rank(args: argparse.Namespace) -> int:
    """Train as this process's rank of the group torchrun (or ``--nproc``) set up."""
    import torch

    from inference.ic.distributed import (DistributedConfig, DistributedTrainer, local_batch_size,
                                          process_group, sharded_offline_source, tag_log_records)
    from inference.ic.optim import LargeBatchConfig
    large_batch = LargeBatchConfig(optimizer=args.optimizer, lr_scaling=args.lr_scaling,
                                   reference_batch_size=args.reference_batch_size, warmup_steps=args.warmup_steps)
    distributed = DistributedConfig(backend=args.backend, timeout=args.collective_timeout)
    training = TrainingConfig(batch_size=args.batch_size, learning_rate=args.learning_rate,
                              validation_size=args.validation_size, checkpoint_every=args.checkpoint_every)
    network = NetworkConfig(lstm_dim=args.lstm_dim, observation_dim=args.observation_dim,
                            components=args.components, embeddings=embedding_kinds(args.embedding))
    started = time.perf_counter()
    with process_group(distributed) as group, ExitStack() as stack:
        tag_log_records(group.rank)
        if args.seed is not None:
            # Rank 0 draws like a single process; the others' in-process simulators must differ.
            torch.manual_seed(args.seed + group.rank)
        if args.dataset:
            paths = dataset_paths(args.dataset)
            source: Any = sharded_offline_source(paths, args.batch_size, group, seed=args.seed)
        else:
            own = argparse.Namespace(**vars(args))
            if args.address:
                own.address = args.address.format(rank=group.rank, local_rank=group.local_rank)
                if own.address == args.address and group.world_size > 1:
                    raise ValueError("with several ranks, --address must name each rank's simulator with "
                                     "{rank} or {local_rank}, or use --simulator CMD to give each rank a pool")
            simulator = stack.enter_context(open_simulator(own))
            source = OnlineSource(simulator, local_batch_size(args.batch_size, group.world_size),
                                  seed=_online_seed(args, group.rank))
        stack.callback(source.close)
        trainer = DistributedTrainer(source, group, network, training, large_batch, distributed,
                                     checkpoint=args.out, resume=args.resume)
        progress = trainer.train(args.num_traces, progress_bar=not args.quiet)
        if group.is_main:
            _report(args, trainer, progress, time.perf_counter() - started, ranks=group.world_size,
                    timings=trainer.timings)
    return 0


