"""A long-RMH reference for IC importance sampling on held-out tau events.

Per event (``tau_inference``'s held-out events, by index): IC IS with a trained
network, then RMH with joint steps (``inference.joint_mcmc``) twice, each with
``--chains`` chains: started from IC's draws (drawn by weight, the first step
covariances measured on the IC posterior), and started from prior traces (the
first covariances from those, weighted by likelihood), which owes IC nothing.
It prints each engine's px, py, pz mean +- std, the chains' R-hat and ESS, and
how far IC's mean lies from each RMH run's in standard errors of the
difference; P(true channel) for each; and runs and seconds per effective sample.

A reference is one only where its chains mix: R-hat near 1 across chains that
started apart. Where R-hat is large the chains disagree and the comparison says
nothing; the script prints both.

In ``--out``: ``event-N-reference.png`` (IC's and each RMH run's momentum
posteriors with the truth marked) and ``tau_rmh_reference.json``.

With ``--mass-shell`` every third step of the chains walks the neutrino's mass shell
(``simulators.tau.mass_shell``), which moves a one-neutrino event's momentum along the
sheet the image allows; ``--hadron-energy`` adds the step that scales a charged hadron's
energy with the photons and every direction kept (``simulators.tau.hadron_energy``).

    python -m benchmarks.tau_rmh_reference --network tau.ckpt --events 18 12 [--steps 20000 --chains 8] [--mass-shell]
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from benchmarks._processes import machine, start_run
from benchmarks.tau_inference import FIRST_EVENT_SEED, MOMENTA, timed
from inference import plots
from inference.ic import NetworkProposal
from inference.ic.adapt import quiet_weight_warnings
from inference.ic.checkpoint import load_checkpoint
from inference.importance import importance_sampling
from inference.joint_mcmc import joint_metropolis_hastings
from inference.pool import SimulatorPool
from inference.posterior import Posterior
from simulators import tau_decay
from simulators.tau.hadron_energy import HadronEnergyMove
from simulators.tau.mass_shell import MassShellMove


def moments(posterior: Posterior, ess: dict[str, float]) -> dict:
    return {name: {"mean": float(np.ravel(posterior.mean(name))[0]), "std": float(np.ravel(posterior.std(name))[0]),
                   "ess": ess[name]} for name in MOMENTA}


def separation(first: dict, second: dict) -> float:
    """|mean difference| over the standard error of the difference, each mean's error std / sqrt(ESS)."""
    error = math.hypot(first["std"] / math.sqrt(max(first["ess"], 1.0)), second["std"] / math.sqrt(max(second["ess"], 1.0)))
    return abs(first["mean"] - second["mean"]) / error if error > 0 else math.inf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", required=True, help="IC checkpoint (see README's longer run)")
    parser.add_argument("--events", type=int, nargs="+", default=[18, 12], help="held-out event indices")
    parser.add_argument("--ic-traces", type=int, default=3000, help="simulator runs of IC IS per event")
    parser.add_argument("--steps", type=int, default=20_000, help="RMH steps per chain after burn-in")
    parser.add_argument("--burn-in", type=int, default=2000, help="RMH steps per chain discarded while steps adapt")
    parser.add_argument("--thin", type=int, default=20,
                        help="keep every THIN-th step: a kept tau trace holds its ~600 kB image and likelihood")
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--starts", nargs="+", choices=("IC", "prior"), default=["IC", "prior"],
                        help="where RMH's chains start: IC's draws, prior traces, or both")
    parser.add_argument("--mass-shell", action="store_true",
                        help="model moves (every third step) walk the neutrino's mass shell "
                             "(simulators.tau.mass_shell)")
    parser.add_argument("--hadron-energy", action="store_true",
                        help="model moves also scale a charged hadron's energy (simulators.tau.hadron_energy)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="tau-rmh-reference")
    args = parser.parse_args()
    out = start_run(args.out)
    network, _ = load_checkpoint(args.network)
    network.eval()
    model_moves = ([MassShellMove()] if args.mass_shell else []) + ([HadronEnergyMove()] if args.hadron_energy else [])
    rows = []
    command = "python -m simulators.tau_decay --image-source likelihood"
    with SimulatorPool(command, workers=args.workers, timeout=120) as pool, quiet_weight_warnings():
        for event in args.events:
            truth, observations = tau_decay.generate_event(FIRST_EVENT_SEED + event, image_source="likelihood")
            ic, ic_seconds = timed(lambda: importance_sampling(pool, args.ic_traces, observations,
                                                               proposal=NetworkProposal(network, observations)))
            shown = {"IC IS": ic}
            row = {"event": event, "channel": truth["channel_name"], "truth": {n: truth[n] for n in MOMENTA},
                   "IC IS": dict(moments(ic, {n: ic.ess for n in MOMENTA}), runs=args.ic_traces,
                                 seconds=ic_seconds, p_true_channel=ic.probabilities("channel").get(truth["channel"], 0.0))}
            for start in args.starts:
                engine = f"joint RMH from {start}"
                rmh, seconds = timed(lambda: joint_metropolis_hastings(
                    pool, args.steps // args.thin * args.chains, observations, chains=args.chains,
                    burn_in=args.burn_in, thin=args.thin,
                    starts=ic.traces if start == "IC" else None,
                    start_log_weights=ic.log_weights if start == "IC" else None,
                    model_moves=model_moves, seed=event, progress=True))
                ess = {n: float(np.ravel(rmh.variable_ess(n))[0]) for n in MOMENTA}
                runs = args.chains * (args.burn_in + args.steps) + (args.ic_traces if start == "IC" else 100)
                row[engine] = dict(moments(rmh, ess), runs=runs, seconds=seconds, acceptance=rmh.acceptance_rate,
                                   r_hat={n: float(np.ravel(rmh.variable_rhat(n))[0]) for n in MOMENTA},
                                   p_true_channel=rmh.probabilities("channel").get(truth["channel"], 0.0))
                shown[engine] = rmh
            plots.posterior_histograms(shown, MOMENTA, truth, out / f"event-{event}-reference.png")
            rows.append(row)
            report(row)
            (out / "tau_rmh_reference.json").write_text(json.dumps(
                {"machine": machine(), "args": vars(args), "events": rows}, indent=2, default=float))


def report(row: dict) -> None:
    print(f"\nevent {row['event']} ({row['channel']}), truth " + ", ".join(
        f"{n} {row['truth'][n]:.2f}" for n in MOMENTA))
    ic = row["IC IS"]
    for engine, result in row.items():
        if not isinstance(result, dict) or "runs" not in result:
            continue
        cells = "; ".join(f"{n} {result[n]['mean']:.2f} +- {result[n]['std']:.2f}" for n in MOMENTA)
        ess = min(result[n]["ess"] for n in MOMENTA)
        line = (f"  {engine:<22} {cells}; P(true channel) {result['p_true_channel']:.2f}; "
                f"ESS {ess:.0f} in {result['runs']} runs, {result['seconds']:.0f} s")
        if "r_hat" in result:
            r_hat = ", ".join(f"{result['r_hat'][n]:.2f}" for n in MOMENTA)
            line += (f"; R-hat {r_hat}; acceptance {result['acceptance']:.2f}; IC's mean off by "
                     + ", ".join(f"{separation(ic[n], result[n]):.1f}" for n in MOMENTA) + " standard errors")
        print(line, flush=True)


if __name__ == "__main__":
    main()
