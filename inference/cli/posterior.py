"""``ppx posterior``: posterior inference by importance sampling or Metropolis-Hastings."""

from __future__ import annotations

import argparse
import time
from typing import Optional

import numpy as np

from inference.cli.common import (add_common_arguments, emit, import_callable, observations_from, open_simulator,
                                  positive_int)
from inference.ic import NetworkProposal, load_checkpoint
from inference.ic.adapt import Adaptation, adapted_importance_sampling
from inference.ic.bridge import network_smc
from inference.importance import importance_sampling
from inference.joint_mcmc import joint_metropolis_hastings
from inference.mcmc import metropolis_hastings
from inference.smc import tempered_smc

DEFAULT_START_TRACES = 1000


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "posterior", help="posterior inference given observations",
        description="Posterior over the simulator's latent variables given --observe values: importance "
                    "sampling with prior proposals (is) or an IC network's (ic), random-walk "
                    "Metropolis-Hastings (rmh; rmh-joint also steps all continuous latents at once, for "
                    "posteriors on a ridge), lightweight Metropolis-Hastings (lmh) or sequential Monte "
                    "Carlo on a tempering ladder with RMH moves (smc, -n particles; from the prior, or "
                    "with --network from the network's proposal). --out writes an ArviZ netCDF file.")
    add_common_arguments(parser, num_traces=1000)
    parser.add_argument("--engine", choices=("is", "ic", "rmh", "rmh-joint", "lmh", "smc"), default="is",
                        help="inference engine: is (prior proposals), ic (the --network's proposals), "
                             "rmh, rmh-joint, lmh, smc (default is)")
    parser.add_argument("--network", metavar="CKPT",
                        help="IC network checkpoint: the proposal of --engine ic; for --engine smc the "
                             "ladder's start (q ** (1 - beta) p(x, y) ** beta instead of the prior's); for "
                             "--engine rmh-joint where the chains start (--start-traces IC draws)")
    parser.add_argument("--start-traces", type=positive_int, metavar="N",
                        help="rmh-joint: the chains start from N weighted traces (IC draws with --network, "
                             "else prior traces weighted by likelihood) and their first steps are measured "
                             f"on them (default {DEFAULT_START_TRACES})")
    parser.add_argument("--adapt-rounds", type=int, default=0, metavar="R",
                        help="IC, SMC with --network: first fit a copy of the network to these observations "
                             "in R rounds of importance sampling and Adam steps (default 0: the network as "
                             "trained)")
    parser.add_argument("--adapt-traces", type=positive_int,
                        help=f"IC: simulator runs per adaptation round (default {Adaptation.traces_per_round})")
    parser.add_argument("--adapt-steps", type=positive_int,
                        help=f"IC: Adam steps after each adaptation round (default {Adaptation.steps_per_round}; "
                             "more fit a narrow posterior in fewer rounds)")
    parser.add_argument("--adapt-keep-rounds", action="store_true",
                        help="IC: keep the adaptation's traces in the posterior too, each weighed against "
                             "the mixture of the network copies that drew them, so that their runs add ESS")
    parser.add_argument("--batch-size", type=int, default=64, help="traces per message for prior IS")
    parser.add_argument("--chains", type=int, help="MCMC chains (default: one per worker)")
    parser.add_argument("--burn-in", type=int, help="MCMC steps discarded per chain (default a tenth)")
    parser.add_argument("--thin", type=int, default=1, help="keep every THIN-th MCMC step (default 1)")
    parser.add_argument("--step-scale", type=float, default=0.5,
                        help="RMH random-walk step in prior standard deviations, where each site's step "
                             "starts before burn-in tunes it (default 0.5)")
    parser.add_argument("--moves", type=positive_int, default=20,
                        help="SMC: RMH steps per particle on each tempering stage (default 20)")
    parser.add_argument("--model-move", action="append", default=[], metavar="MODULE:CLASS",
                        help="smc, rmh-joint: a move that knows the model (inference.smc.ModelMove), made "
                             "with no arguments, taking every third step; repeatable. For tau decays: "
                             "simulators.tau.mass_shell:MassShellMove")
    parser.add_argument("--no-adapt", dest="adapt", action="store_false",
                        help="keep every RMH step at --step-scale instead of tuning it during burn-in")
    parser.set_defaults(run=run)


def _adaptation(args: argparse.Namespace) -> Adaptation:
    """The --adapt-* settings; the per-round ones only mean something once --adapt-rounds asks for rounds."""
    if not args.adapt_rounds:
        given = [f"--adapt-traces {args.adapt_traces}" if args.adapt_traces is not None else "",
                 f"--adapt-steps {args.adapt_steps}" if args.adapt_steps is not None else "",
                 "--adapt-keep-rounds" if args.adapt_keep_rounds else ""]
        for flag in filter(None, given):
            raise ValueError(f"{flag} is only used with --adapt-rounds R (R > 0)")
    per_round = {name: value for name, value in (("traces_per_round", args.adapt_traces),
                                                  ("steps_per_round", args.adapt_steps)) if value is not None}
    return Adaptation(rounds=args.adapt_rounds, **per_round)


def _model_moves(args: argparse.Namespace) -> list:
    if args.model_move and args.engine not in ("smc", "rmh-joint"):
        raise ValueError(f"--model-move is only used by --engine smc or rmh-joint, not --engine {args.engine}")
    return [import_callable(spec, "--model-move", "simulators.tau.mass_shell:MassShellMove")()
            for spec in args.model_move]


def _joint_rmh(simulator, observations, proposal: Optional[NetworkProposal], model_moves: list,
               args: argparse.Namespace):
    """RMH with joint steps, started from --start-traces IC draws where there is a network."""
    count = args.start_traces or DEFAULT_START_TRACES
    starts = log_weights = None  # joint_metropolis_hastings draws `count` prior traces itself
    if proposal is not None:
        drawn = importance_sampling(simulator, count, observations, proposal=proposal,
                                    progress=not args.quiet)
        starts, log_weights = drawn.traces, drawn.log_weights
    return joint_metropolis_hastings(simulator, args.num_traces, observations, chains=args.chains,
                                     burn_in=args.burn_in, thin=args.thin, starts=starts,
                                     start_log_weights=log_weights, initial_traces=count,
                                     model_moves=model_moves, seed=args.seed, progress=not args.quiet)


def run(args: argparse.Namespace) -> int:
    observations = observations_from(args)
    if args.adapt_rounds < 0:
        raise ValueError(f"--adapt-rounds must be 0 or more, got {args.adapt_rounds}")
    adaptation = _adaptation(args)
    model_moves = _model_moves(args)
    proposal = network = None
    if args.engine == "ic" and not args.network:
        raise ValueError("--engine ic needs --network CKPT (train one with `ppx train`)")
    if args.engine in ("ic", "smc", "rmh-joint") and args.network:
        network, _ = load_checkpoint(args.network)
        proposal = NetworkProposal(network, observations)
    elif args.network:
        raise ValueError(f"--network is only used by --engine ic, smc or rmh-joint, not --engine {args.engine}")
    if args.adapt_rounds and network is None:
        raise ValueError("--adapt-rounds needs --network CKPT, with --engine ic or smc"
                         + ("" if args.engine == "smc" else f", not --engine {args.engine}"))
    if args.start_traces is not None and args.engine != "rmh-joint":
        raise ValueError(f"--start-traces is only used by --engine rmh-joint, not --engine {args.engine}")
    if args.adapt_keep_rounds and args.engine != "ic":
        raise ValueError(f"--adapt-keep-rounds is only used by --engine ic, not --engine {args.engine}")
    started = time.perf_counter()
    with open_simulator(args) as simulator:
        if args.engine in ("is", "ic"):
            if adaptation.rounds:
                posterior = adapted_importance_sampling(simulator, network, args.num_traces, observations,
                                                        adaptation, progress=not args.quiet,
                                                        keep_rounds=args.adapt_keep_rounds)
            else:
                posterior = importance_sampling(simulator, args.num_traces, observations, proposal=proposal,
                                                batch_size=args.batch_size, progress=not args.quiet)
        elif args.engine == "smc" and network is not None:
            posterior = network_smc(simulator, network, args.num_traces, observations, adaptation,
                                    moves=args.moves, model_moves=model_moves, seed=args.seed,
                                    progress=not args.quiet)
        elif args.engine == "smc":
            posterior = tempered_smc(simulator, args.num_traces, observations, moves=args.moves,
                                     model_moves=model_moves, seed=args.seed, progress=not args.quiet)
        elif args.engine == "rmh-joint":
            posterior = _joint_rmh(simulator, observations, proposal, model_moves, args)
        else:
            posterior = metropolis_hastings(simulator, args.num_traces, observations, kernel=args.engine,
                                            chains=args.chains, burn_in=args.burn_in, thin=args.thin,
                                            scale=args.step_scale, adapt=args.adapt, seed=args.seed,
                                            progress=not args.quiet)
        dropped = getattr(simulator, "dropped", 0)
    seconds = time.perf_counter() - started
    summary = posterior.summary()
    summary.update(traces=posterior.num_traces, seconds=seconds,
                   traces_per_second=posterior.num_traces / seconds)
    if dropped:
        summary["dropped_traces"] = dropped
    text = posterior.table() + f"\n{posterior.num_traces} traces in {seconds:.2f} s"
    if args.engine == "smc":
        stages = len(posterior.acceptance_rates)
        summary.update(stages=stages, temperatures=posterior.temperatures,
                       acceptance_rates=posterior.acceptance_rates,
                       simulator_runs=posterior.simulator_runs)
        text += f" ({stages} tempering stages, {summary['simulator_runs']} simulator runs)"
    if model_moves and posterior.model_move_acceptance is not None:
        rates = [rate for rate in np.atleast_1d(posterior.model_move_acceptance) if rate is not None]
        summary["model_move_acceptance"] = posterior.model_move_acceptance
        if rates:
            text += f"; model moves accepted {np.mean(rates):.2f} of the time"
    if adaptation.rounds:
        summary.update(adaptation=posterior.adaptation)
        text += (f" after {adaptation.runs} adaptation runs (ESS per round: "
                 + ", ".join(f"{r['ess']:.1f}" for r in posterior.adaptation["records"]) + ")")
    if args.out:
        posterior.save(args.out)
        summary["out"] = args.out
    emit(args, summary, text + (f"; posterior written to {args.out}" if args.out else ""))
    return 0
