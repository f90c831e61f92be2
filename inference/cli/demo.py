"""``ppx demo``: the tau-decay workflow end to end on bundled defaults (README's main job)."""

from __future__ import annotations

import argparse

from inference.cli.common import add_common_arguments, add_network_placement_arguments, embedding_kinds, emit
from inference.demo import DemoConfig, run_demo


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    defaults = DemoConfig()
    parser = subparsers.add_parser(
        "demo", help="tau decay in a 3D calorimeter: train IC briefly, infer a true event, plot",
        description="Start a pool of tau-decay simulators, generate a ground-truth event, train an IC network "
                    "briefly, run IC importance sampling and a prior-IS baseline on the event, print the "
                    "posterior summary and write plots, the network and the ArviZ file to --out.")
    add_common_arguments(parser, num_traces=defaults.traces)
    parser.set_defaults(out=defaults.out, workers=defaults.workers, seed=defaults.seed,
                        simulator=defaults.simulator, run=run)
    parser.add_argument("--train-traces", type=int, default=defaults.train_traces,
                        help=f"traces to train the IC network on (default {defaults.train_traces})")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help=f"training batch size (default {defaults.batch_size})")
    parser.add_argument("--lstm-dim", type=int, default=defaults.lstm_dim,
                        help=f"IC network LSTM size (default {defaults.lstm_dim})")
    parser.add_argument("--observation-dim", type=int, default=defaults.observation_dim,
                        help=f"IC network observation embedding size (default {defaults.observation_dim})")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate,
                        help=f"Adam learning rate while training (default {defaults.learning_rate:g})")
    add_network_placement_arguments(parser)
    parser.add_argument("--network", metavar="CKPT", default=None,
                        help="use this trained IC checkpoint (from ppx train) instead of training one")
    parser.add_argument("--image-source", choices=("showers", "likelihood"), default=defaults.image_source,
                        help="images from the shower stage or drawn from the calorimeter likelihood; passed "
                             "to the simulators and used for the true event (default showers; a network "
                             "trained as in README's longer run wants likelihood)")
    parser.add_argument("--adapt-rounds", type=int, default=defaults.adapt_rounds, metavar="R",
                        help="also run IC IS with a copy of the network first fitted to the event in R "
                             "rounds of -n runs each, keeping the rounds' traces (default 0: not run)")


def run(args: argparse.Namespace) -> int:
    if args.address or args.model:
        raise ValueError("ppx demo launches its own pool of tau-decay simulators: use --simulator CMD "
                         "and --workers N rather than --address or --model")
    if args.observe or args.observe_file:
        raise ValueError("ppx demo generates its own ground-truth event; --observe is not used")
    config = DemoConfig(out=args.out, simulator=args.simulator, workers=args.workers,
                        train_traces=args.train_traces, traces=args.num_traces, seed=args.seed,
                        batch_size=args.batch_size, lstm_dim=args.lstm_dim,
                        observation_dim=args.observation_dim, learning_rate=args.learning_rate,
                        embeddings=embedding_kinds(args.embedding), device=str(args.device), network=args.network,
                        image_source=args.image_source, adapt_rounds=args.adapt_rounds)
    summary = run_demo(config, progress=not args.quiet)
    table = summary.pop("table")
    emit(args, summary, f"{table}\noutputs in {args.out}/: " + ", ".join(
        path.rsplit("/", 1)[-1] for path in summary["files"]))
    return 0
