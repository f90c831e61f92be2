"""``ppx surrogate record|train|sample|evaluate``: a GAN stand-in for a calorimeter shower stage.

    ppx surrogate record --model simulators.calorimeter:model -n 20000 --out showers.h5
    ppx surrogate train --data showers.h5 --out surrogate.pt --epochs 30
    ppx surrogate sample --surrogate surrogate.pt --conditions test.h5 --out generated.h5
    ppx surrogate evaluate --real test.h5 --generated generated.h5 --out plots/
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from inference.cli.common import add_common_arguments, emit, open_simulator, positive_int
from inference.surrogate.evaluate import evaluate
from inference.surrogate.record import record_showers
from inference.surrogate.showers_file import ShowerData, read_showers, write_showers
from inference.surrogate.surrogate import Surrogate
from inference.surrogate.train import train_surrogate

_TRAINING_FLAGS = {
    "epochs": (int, "passes over the training showers (a resumed run continues up to this; default 30)"),
    "batch_size": (int, "showers per critic step (default 128)"),
    "latent_dim": (int, "generator noise size (default 64)"),
    "generator_hidden": (int, "generator width (default 256; 512 is a little more faithful and half as fast)"),
    "generator_layers": (int, "generator depth: shared layers (default 3)"),
    "cell_pattern": (str, "how a layer's energy is spread over cells: softmax (default; data with cell noise) "
                          "or relu (exact zeros; noiseless data)"),
    "critic_hidden": (int, "critic width (default 256)"),
    "critic_steps": (int, "critic steps per generator step (default 5)"),
    "gradient_penalty": (float, "gradient-penalty weight (default 10)"),
    "generator_lr": (float, "generator learning rate (default 2e-4)"),
    "critic_lr": (float, "critic learning rate (default 2e-4)"),
    "validation_fraction": (float, "share of showers held out for per-epoch KS model selection (default 0.15)"),
    "selection_showers": (int, "at most this many held-out showers scored per epoch (default 5000)"),
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "surrogate", help="record a shower stage, train a GAN surrogate of it, sample and evaluate it",
        description="A conditional Wasserstein GAN that stands in for a calorimeter shower stage: record the "
                    "stage's (particle kind, energy) -> shower pairs to HDF5, train on them, draw showers, and "
                    "measure their fidelity.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    record = actions.add_parser("record", help="run the stage through the engine and write showers to HDF5",
                                description="Draw prior traces of a shower stage and store (kind, energy, "
                                            "shower) rows in the community HDF5 layout (incident_energies, "
                                            "showers, particle_kind).")
    add_common_arguments(record, num_traces=1000)
    record.add_argument("--batch-size", type=positive_int, default=64,
                        help="traces per message when the simulator samples whole traces (default 64)")
    record.set_defaults(run=run_record)

    train = actions.add_parser("train", help="train the GAN on recorded showers",
                               description="Train a conditional WGAN-GP on recorded showers. The checkpoint at "
                                           "--out is rewritten after each epoch and keeps the generator with the "
                                           "lowest mean KS distance on held-out showers; --resume continues it.")
    train.add_argument("--data", required=True, metavar="FILE", help="HDF5 showers from `ppx surrogate record`")
    train.add_argument("--out", default="surrogate.pt", metavar="PATH", help="checkpoint (default surrogate.pt)")
    train.add_argument("--resume", action="store_true", help="continue the checkpoint at --out if it exists")
    for name, (kind, help_text) in _TRAINING_FLAGS.items():
        train.add_argument("--" + name.replace("_", "-"), dest=name, help=help_text,
                           **({"choices": ("softmax", "relu")} if kind is str else
                              {"type": positive_int if kind is int else float}))
    _add_process_flags(train, seeds="the data split, initial weights and noise (default 0)")
    train.set_defaults(run=run_train)

    sample = actions.add_parser("sample", help="draw showers from a trained surrogate",
                                description="Draw showers for the kinds and energies of a shower file "
                                            "(--conditions), or for -n showers of one or all kinds with energies "
                                            "uniform in a range.")
    sample.add_argument("--surrogate", required=True, metavar="PATH", help="checkpoint from `ppx surrogate train`")
    sample.add_argument("--conditions", metavar="FILE", help="take kinds and energies from this shower file")
    sample.add_argument("-n", "--num-showers", type=positive_int, default=1000,
                        help="showers to draw without --conditions (default 1000)")
    sample.add_argument("--kind", help="particle kind by name or number (default: all kinds, uniformly)")
    sample.add_argument("--energy", type=float, nargs="+", metavar="E",
                        help="one energy, or LOW HIGH for uniform energies (default: the training range)")
    sample.add_argument("--batch-size", type=positive_int, default=10_000, help="showers per generator call")
    sample.add_argument("--out", metavar="PATH", help="write the showers to this HDF5 file")
    _add_process_flags(sample, seeds="the conditions and the generator's noise")
    sample.set_defaults(run=run_sample)

    check = actions.add_parser("evaluate", help="compare generated showers with real ones",
                               description="Shower-shape observables, KS distances, separation powers and "
                                           "classifier AUCs of generated against real showers; a table and plots.")
    check.add_argument("--real", required=True, metavar="FILE", help="real showers (HDF5)")
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument("--generated", metavar="FILE", help="generated showers (HDF5)")
    source.add_argument("--surrogate", metavar="PATH", help="generate for the real showers' conditions with this")
    check.add_argument("--out", metavar="DIR", help="write plots into this folder")
    check.add_argument("--bins", type=positive_int, default=50, help="histogram bins (default 50)")
    check.add_argument("--threshold", type=float, default=0.0,
                       help="cell energy above which a cell counts as occupied, for sparsity (default 0)")
    check.add_argument("--no-classifier", action="store_true", help="skip the classifier tests")
    check.add_argument("--classifier-epochs", type=positive_int, default=40,
                       help="most epochs per classifier (default 40, with early stopping)")
    _add_process_flags(check, seeds="the real/real split, the classifiers and --surrogate's noise (default 0)")
    check.set_defaults(run=run_evaluate)


def _add_process_flags(parser: argparse.ArgumentParser, *, seeds: str) -> None:
    """The shared output and process flags, for actions that run no simulator."""
    parser.add_argument("--json", action="store_true", help="print the run's summary as one JSON object on stdout")
    parser.add_argument("--seed", type=int, help=f"seed {seeds}")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="torch threads (default 1: on a shared machine small networks lose more to "
                             "thread hand-offs than they gain)")


def _apply_threads(args: argparse.Namespace) -> None:
    import torch
    torch.set_num_threads(args.threads)


def run_record(args: argparse.Namespace) -> int:
    if not args.out:
        raise ValueError("--out PATH is required: the HDF5 file the showers are written to")
    if args.observe or args.observe_file:
        raise ValueError("record draws from the prior; --observe and --observe-file do not apply")
    with open_simulator(args) as simulator:
        result = record_showers(simulator, args.num_traces, args.out, batch_size=args.batch_size,
                                progress=not args.quiet)
    summary = {"showers": result.num_showers, "seconds": result.seconds,
               "showers_per_second": result.showers_per_second, "dropped_traces": result.dropped, "out": args.out}
    emit(args, summary, f"{result.num_showers} showers in {result.seconds:.2f} s "
                        f"({result.showers_per_second:.0f} showers/s); written to {args.out}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    _apply_threads(args)
    data = read_showers(args.data)
    settings: dict[str, Any] = {name: getattr(args, name) for name in _TRAINING_FLAGS
                                if getattr(args, name) is not None}
    if args.seed is not None:
        settings["seed"] = args.seed
    result = train_surrogate(data, args.out, resume=args.resume, progress=not args.quiet, **settings)
    last = result.history[-1] if result.history else {}
    summary = {"epochs": result.epochs, "best_epoch": result.best_epoch, "best_mean_ks": result.best_score,
               "seconds": result.seconds, "showers": len(data), "history": result.history, "out": args.out}
    emit(args, summary, f"trained {result.epochs} epochs on {len(data)} showers in {result.seconds:.1f} s; "
                        f"last epoch mean KS {last.get('ks', float('nan')):.4f}; best epoch {result.best_epoch} "
                        f"(mean KS {result.best_score:.4f}); checkpoint written to {args.out}")
    return 0


def _kind_number(surrogate: Surrogate, kind: str) -> int:
    if kind.isdigit() and int(kind) < len(surrogate.kind_names):
        return int(kind)
    if kind in surrogate.kind_names:
        return surrogate.kind_names.index(kind)
    raise ValueError(f"--kind {kind!r}: expected one of {', '.join(surrogate.kind_names)} "
                     f"or 0..{len(surrogate.kind_names) - 1}")


def _conditions(args: argparse.Namespace, surrogate: Surrogate, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    if args.conditions:
        if args.kind is not None or args.energy is not None:
            raise ValueError("--conditions gives kinds and energies; leave out --kind and --energy")
        data = read_showers(args.conditions)
        if data.kind_names != surrogate.kind_names:
            raise ValueError(f"{args.conditions} names kinds {data.kind_names}; the surrogate knows "
                             f"{surrogate.kind_names}")
        return data.kinds, data.energies
    count = args.num_showers
    if args.kind is None:
        kinds = rng.integers(0, len(surrogate.kind_names), count)
    else:
        kinds = np.full(count, _kind_number(surrogate, args.kind))
    energy = args.energy if args.energy is not None else list(surrogate.energy_range)
    if len(energy) == 1:
        energies = np.full(count, energy[0])
    elif len(energy) == 2 and 0 < energy[0] <= energy[1]:
        energies = rng.uniform(energy[0], energy[1], count)
    else:
        raise ValueError(f"--energy expects one positive energy or LOW HIGH with 0 < LOW <= HIGH, got {energy}")
    return kinds, energies


def run_sample(args: argparse.Namespace) -> int:
    _apply_threads(args)
    surrogate = Surrogate.load(args.surrogate)
    kinds, energies = _conditions(args, surrogate, np.random.default_rng(args.seed))
    started = time.perf_counter()
    showers = surrogate.sample(kinds, energies, batch_size=args.batch_size, seed=args.seed)
    seconds = time.perf_counter() - started
    if args.out:
        write_showers(args.out, ShowerData(kinds, energies, showers, surrogate.geometry, surrogate.kind_names,
                                           surrogate.energy_unit, "surrogate"))
    rate = len(showers) / seconds if seconds > 0 else float("inf")
    summary = {"showers": len(showers), "seconds": seconds, "showers_per_second": rate,
               "epoch": surrogate.epoch, "out": args.out}
    emit(args, summary, f"{len(showers)} showers in {seconds:.3f} s ({rate:.0f} showers/s)"
                        + (f"; written to {args.out}" if args.out else ""))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    _apply_threads(args)
    seed = args.seed if args.seed is not None else 0
    real = read_showers(args.real)
    if args.surrogate:
        generated = Surrogate.load(args.surrogate).sample_like(real, seed=seed)
    else:
        generated = read_showers(args.generated)
    report = evaluate(real, generated, out_dir=args.out, bins=args.bins, threshold=args.threshold,
                      classifier=not args.no_classifier, seed=seed, epochs=args.classifier_epochs)
    emit(args, report.summary(), report.table())
    return 0
