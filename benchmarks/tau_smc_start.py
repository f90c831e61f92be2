"""Tempered SMC on held-out tau events, its ladder started from the prior and from the IC network.

On chosen held-out events of ``benchmarks.tau_inference`` (same seeds), tempered
SMC runs with the same particles and moves once per start and seed (two seeds by
default): from the prior (targets p(x) p(y | x) ** beta) and from the trained
network's proposal q (q(x) ** (1 - beta) p(x, y) ** beta, ``inference.ic.bridge``). For each run it
prints the stages, simulator runs and seconds, SMC's estimate of log p(y) (which
comes out lower from a run that lost part of the posterior, a channel say), the
channels holding the mass where the true one is not the mode, the momentum posteriors against
the truth (with the posterior probability below it), and per event the ratio of
the runs the prior's ladder took to the network's. Two runs of one start that
disagree show the moves have not mixed the particles across the posterior. At the
end it prints, per start and seed, how often the true channel is the mode and the
68% and 95% intervals hold the truth (``benchmarks.tau_inference``'s report), and
``--out`` keeps the rows as JSON.

    python -m benchmarks.tau_smc_start --network tau.ckpt --events 2,5 --particles 200 --moves 10 [--starts network]
    python -m benchmarks.tau_smc_start --starts prior --events 5 --mass-shell --hadron-energy
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from benchmarks._processes import machine
from benchmarks.tau_inference import FIRST_EVENT_SEED, MOMENTA, assess, report, timed, true_log_joint
from inference.ic.bridge import NetworkBridge
from inference.ic.checkpoint import load_checkpoint
from inference.pool import SimulatorPool
from inference.smc import tempered_smc
from simulators import tau_decay
from simulators.tau.hadron_energy import HadronEnergyMove
from simulators.tau.mass_shell import MassShellMove


def model_move_acceptance(smc) -> str:
    rates = [rate for rate in smc.model_move_acceptance if rate is not None]
    return f"; model moves accepted {np.mean(rates):.2f}" if rates else ""


def rival_channels(row: dict) -> str:
    """The channels holding the posterior's mass where the true one is not its mode."""
    if row["mode_is_true_channel"]:
        return ""
    return " (" + ", ".join(f"{name} {probability:.2f}" for name, probability
                            in sorted(row["channel_probabilities"].items(), key=lambda item: -item[1])) + ")"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", help="IC checkpoint trained on likelihood-image tau traces "
                                           "(needed for --starts network)")
    parser.add_argument("--events", default="2,5", help="comma-separated held-out event indices")
    parser.add_argument("--particles", type=int, default=200)
    parser.add_argument("--moves", type=int, default=10, help="RMH steps per particle and stage")
    parser.add_argument("--starts", nargs="+", choices=("prior", "network"), default=["prior", "network"],
                        help="where the ladders start; the runs' ratio is printed when both do")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                        help="one run per start and seed; two show whether the runs agree")
    parser.add_argument("--mass-shell", action="store_true",
                        help="model moves (every third step) walk the neutrino's mass shell "
                             "(simulators.tau.mass_shell)")
    parser.add_argument("--hadron-energy", action="store_true",
                        help="model moves also scale a charged hadron's energy (simulators.tau.hadron_energy)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", help="write every run's row here, as JSON")
    args = parser.parse_args()
    if "network" in args.starts and args.network is None:
        parser.error("--starts network needs --network CHECKPOINT")
    torch.set_num_threads(1)
    print(f"machine: {machine()}; {args.particles} particles, {args.moves} moves per stage"
          + (", every third a model move" if args.mass_shell or args.hadron_energy else ""))
    model_moves = ([MassShellMove()] if args.mass_shell else []) + ([HadronEnergyMove()] if args.hadron_energy else [])
    network = load_checkpoint(args.network)[0] if args.network else None
    results: dict[str, list[dict]] = {}
    with SimulatorPool("python -m simulators.tau_decay --image-source likelihood", workers=args.workers,
                       timeout=120) as pool:
        for index in (int(event) for event in args.events.split(",")):
            truth, observation = tau_decay.generate_event(FIRST_EVENT_SEED + index, image_source="likelihood")
            truth["log_joint"] = true_log_joint(FIRST_EVENT_SEED + index, truth, "likelihood")
            print(f"\nevent {index} ({truth['channel_name']}): truth "
                  + ", ".join(f"{name} {truth[name]:.2f}" for name in MOMENTA))
            runs = {}
            for start in args.starts:
                for seed in args.seeds:
                    bridge = NetworkBridge(network, observation) if start == "network" else None
                    smc, seconds = timed(lambda: tempered_smc(pool, args.particles, observation, moves=args.moves,
                                                              seed=seed, bridge=bridge, model_moves=model_moves))
                    runs.setdefault(start, []).append(smc.simulator_runs)
                    row = assess(smc, truth, seconds, smc.simulator_runs, smc.ess)
                    row.update(event=index, stages=len(smc.acceptance_rates), runs=smc.simulator_runs,
                               log_evidence=smc.log_evidence)
                    results.setdefault(f"SMC from the {start}, seed {seed}", []).append(row)
                    cells = "; ".join(f"{name} {row['mean'][name]:.2f} +- {row['std'][name]:.2f} "
                                      f"(P below truth {row['mass_below_truth'][name]:.3f})" for name in MOMENTA)
                    print(f"  from the {start}, seed {seed}: {len(smc.acceptance_rates)} stages, "
                          f"{smc.simulator_runs} runs, {seconds:.0f} s; log evidence {smc.log_evidence:.1f}; "
                          f"P(true channel) "
                          f"{row['probability_of_true_channel']:.2f}{rival_channels(row)}; best, median trace "
                          f"{row['nats_below_truth']['best']:.0f}, {row['nats_below_truth']['median']:.0f} nats "
                          f"below the truth; {cells}{model_move_acceptance(smc)}", flush=True)
            if len(runs) == 2:
                print(f"  runs, prior's ladder / network's: {np.mean(runs['prior']) / np.mean(runs['network']):.2f}")
    report(results)
    if args.out:
        with open(args.out, "w") as file:
            json.dump({"args": vars(args), "results": results}, file, indent=1)


if __name__ == "__main__":
    main()
