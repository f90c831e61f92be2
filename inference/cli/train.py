"""``ppx train``: train an IC proposal network online from simulators or offline from trace files."""

from __future__ import annotations

import argparse
import glob
import time
from contextlib import ExitStack

from inference.cli.common import add_common_arguments, emit, open_simulator
from inference.ic import NetworkConfig, OfflineSource, OnlineSource, Trainer, TrainingConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train an inference-compilation proposal network",
        description="Train the IC network on prior traces: online from a simulator (--simulator/--address/"
                    "--model), or offline from HDF5 trace files written by `ppx prior --out` (--dataset). "
                    "Checkpoints go to --out and resume with --resume.")
    add_common_arguments(parser, num_traces=50_000)
    parser.add_argument("--dataset", nargs="+", metavar="FILE",
                        help="HDF5 trace files (globs allowed) to train on instead of a simulator")
    parser.add_argument("--resume", action="store_true", help="continue training the checkpoint at --out")
    parser.add_argument("--batch-size", type=int, default=64, help="traces per training step (default 64)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--validation-size", type=int, default=256, help="held-out traces (default 256)")
    parser.add_argument("--checkpoint-every", type=float, default=300.0,
                        help="seconds between checkpoints (default 300; one is always written at the end)")
    parser.add_argument("--lstm-dim", type=int, default=128, help="LSTM hidden size (default 128)")
    parser.add_argument("--observation-dim", type=int, default=64,
                        help="observation embedding size (default 64)")
    parser.add_argument("--components", type=int, default=5, help="proposal mixture components (default 5)")
    parser.add_argument("--embedding", action="append", default=[], metavar="NAME=KIND",
                        help="observation embedding for an observed name: feedforward, cnn or sparse3d "
                             "(default chosen by shape)")
    parser.set_defaults(run=run)


def _embeddings(items: list[str]) -> dict[str, str]:
    embeddings = {}
    for item in items:
        name, sep, kind = item.partition("=")
        if not sep or not name or not kind:
            raise ValueError(f"--embedding expects NAME=KIND (e.g. calorimeter=cnn), got {item!r}")
        embeddings[name] = kind
    return embeddings


def run(args: argparse.Namespace) -> int:
    if not args.out:
        raise ValueError("--out PATH is required: where the network checkpoint is written")
    if args.seed is not None:
        import torch
        torch.manual_seed(args.seed)
    training = TrainingConfig(batch_size=args.batch_size, learning_rate=args.learning_rate,
                              validation_size=args.validation_size, checkpoint_every=args.checkpoint_every)
    network = NetworkConfig(lstm_dim=args.lstm_dim, observation_dim=args.observation_dim,
                            components=args.components, embeddings=_embeddings(args.embedding))
    started = time.perf_counter()
    with ExitStack() as stack:
        if args.dataset:
            paths = sorted({path for pattern in args.dataset for path in (glob.glob(pattern) or [pattern])})
            source = OfflineSource(paths, args.batch_size, seed=args.seed)
        else:
            simulator = stack.enter_context(open_simulator(args))
            source = OnlineSource(simulator, args.batch_size)
        stack.callback(source.close)
        trainer = Trainer(source, network, training, checkpoint=args.out, resume=args.resume)
        progress = trainer.train(args.num_traces, progress_bar=not args.quiet)
    seconds = time.perf_counter() - started
    summary = {
        "traces": progress["traces"], "steps": progress["steps"], "seconds": seconds,
        "traces_per_second": progress["traces"] / max(progress["seconds"], 1e-9),
        "loss": progress["loss"][-1][1] if progress["loss"] else None,
        "validation_loss": progress["validation"][-1][1] if progress["validation"] else None,
        "validation": progress["validation"],
        "addresses": len(trainer.network.addresses), "out": args.out,
    }
    table = (f"trained on {summary['traces']} traces in {seconds:.1f} s; addresses {summary['addresses']}; "
             f"validation loss {summary['validation_loss']:.4f}; network written to {args.out}")
    emit(args, summary, table)
    return 0


