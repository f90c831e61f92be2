"""How far joint-RMH chains travel on held-out tau events with each set of model moves.

Per event (``tau_inference``'s held-out events, by index) the same chains, steps and
seed run once per set of model moves: none, the mass-shell step
(``simulators.tau.mass_shell``), and the mass-shell and charged-hadron energy steps
(``simulators.tau.hadron_energy``), or the latter without its step that scales
a three-prong decay's pions together. Every chain starts at the event's true trace
(drawn again from the event's seed and run with its observations), which lies
inside the posterior, so no network is needed and the chains only have to move.
Printed per set: px, py, pz and the visible energy E_vis (what the hadron step
changes) as mean +- std, their ESS across chains (ArviZ) per 1,000 simulator
runs, the model moves' acceptance, and each set's ESS per run over the first
set's. Chains that cannot leave the start's neighbourhood show a small ESS and a
narrow std; chains started at one point share it, so R-hat says little here.

    python -m benchmarks.tau_model_moves --events 5 4 12 [--steps 2000 --burn-in 500 --chains 8]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from benchmarks._processes import machine
from benchmarks.tau_inference import FIRST_EVENT_SEED, MOMENTA, timed, true_trace
from inference.joint_mcmc import joint_metropolis_hastings
from inference.mcmc import replay_with
from inference.pool import SimulatorPool
from simulators import tau_decay
from simulators.tau.hadron_energy import HadronEnergyMove
from simulators.tau.mass_shell import MassShellMove

MOVE_SETS = {
    "none": lambda: [],
    "mass shell": lambda: [MassShellMove()],
    "mass shell + hadron energy": lambda: [MassShellMove(), HadronEnergyMove()],
    "mass shell + one hadron at a time": lambda: [MassShellMove(), HadronEnergyMove(together=0.0)],
}


def summarise(posterior, runs: int) -> dict:
    quantities = {name: (name, None) for name in MOMENTA}
    quantities["E_vis"] = ("visible_momentum", 0)
    summary = {}
    for label, (name, component) in quantities.items():
        values, ess = posterior.values(name), posterior.variable_ess(name)
        if component is not None:
            values, ess = values[:, component], ess[component]
        std = float(np.std(values))
        ess = float(np.ravel(ess)[0]) if std > 0 else 0.0  # chains that never moved have no ESS
        summary[label] = {"mean": float(np.mean(values)), "std": std, "ess_per_1000_runs": 1000.0 * ess / runs}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[5, 4, 12], help="held-out event indices")
    parser.add_argument("--sets", nargs="+", choices=tuple(MOVE_SETS), default=list(MOVE_SETS),
                        help="sets of model moves to compare; ratios are against the first")
    parser.add_argument("--steps", type=int, default=2000, help="kept RMH steps per chain")
    parser.add_argument("--burn-in", type=int, default=500, help="steps per chain discarded while steps adapt")
    parser.add_argument("--thin", type=int, default=5)
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", help="write every run's row here, as JSON")
    args = parser.parse_args()
    print(f"machine: {machine()}; {args.chains} chains x ({args.burn_in} + {args.steps}) steps from the truth")
    runs = args.chains * (args.burn_in + args.steps)
    rows = []
    with SimulatorPool("python -m simulators.tau_decay --image-source likelihood", workers=args.workers,
                       timeout=120) as pool:
        for event in args.events:
            seed = FIRST_EVENT_SEED + event
            truth, observations = tau_decay.generate_event(seed, image_source="likelihood")
            start = pool.run_many([replay_with(true_trace(seed, "likelihood"), {})], observations)[0]
            print(f"\nevent {event} ({truth['channel_name']}): truth "
                  + ", ".join(f"{name} {truth[name]:.2f}" for name in MOMENTA)
                  + f", E_vis {float(start.named('visible_momentum').value[0]):.2f}", flush=True)
            row = {"event": event, "channel": truth["channel_name"], "truth": {n: truth[n] for n in MOMENTA}}
            for name in args.sets:
                posterior, seconds = timed(lambda: joint_metropolis_hastings(
                    pool, args.steps // args.thin * args.chains, observations, chains=args.chains,
                    burn_in=args.burn_in, thin=args.thin, starts=[start] * args.chains,
                    model_moves=MOVE_SETS[name](), seed=args.seed, progress=True))
                row[name] = dict(summarise(posterior, runs), runs=runs, seconds=seconds,
                                 acceptance=posterior.acceptance_rate,
                                 model_move_acceptance=posterior.model_move_acceptance)
                report(name, row[name], row[args.sets[0]])
            rows.append(row)
            if args.out:
                with open(args.out, "w") as file:
                    json.dump({"machine": machine(), "args": vars(args), "events": rows}, file, indent=2)


def report(name: str, result: dict, first: dict) -> None:
    def cell(label: str) -> str:
        ess, first_ess = result[label]["ess_per_1000_runs"], first[label]["ess_per_1000_runs"]
        ratio = f", x{ess / first_ess:.1f}" if first_ess > 0 and result is not first else ""
        return f"{label} {result[label]['mean']:.2f} +- {result[label]['std']:.2f} (ESS/1000 runs {ess:.1f}{ratio})"

    cells = "; ".join(cell(label) for label in (*MOMENTA, "E_vis"))
    moves = result["model_move_acceptance"]
    print(f"  {name:<28} {cells}; acceptance {result['acceptance']:.2f}"
          + ("" if moves is None else f", model moves {moves:.2f}") + f"; {result['seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
