"""How far fitting the IC network to one tau event moves its proposals, round by round.

On chosen held-out events of ``benchmarks.tau_inference`` (same seeds), IC IS with
the trained network and IC IS after ``--rounds`` rounds of ``inference.ic.adapt``
run in the same pool with the same number of final traces. For each it prints ESS,
how far the best and median traces lie below the true trace's log p(x, y), and
the momentum posteriors against the truth; for the adaptation, each round's ESS,
tempering power alpha and fitting loss, which show whether the bridge to the
posterior is advancing and how fast.

    python -m benchmarks.tau_adaptation --network tau.ckpt --events 5,0 --rounds 12
"""

from __future__ import annotations

import argparse


from benchmarks._processes import start_run
from benchmarks.tau_inference import FIRST_EVENT_SEED, MOMENTA, assess, timed, true_log_joint
from inference.ic import NetworkProposal
from inference.ic.adapt import Adaptation, adapted_importance_sampling
from inference.ic.checkpoint import load_checkpoint
from inference.importance import importance_sampling
from inference.pool import SimulatorPool
from simulators import tau_decay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", required=True, help="IC checkpoint trained on likelihood-image tau traces")
    parser.add_argument("--events", default="0", help="comma-separated held-out event indices")
    parser.add_argument("--traces", type=int, default=1000, help="final IS traces per engine")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--round-traces", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20, help="Adam steps per round")
    parser.add_argument("--tempered-ess", type=float, default=0.1)
    parser.add_argument("--keep-rounds", action="store_true",
                        help="keep the rounds' traces in the adapted posterior (mixture weights)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    start_run()
    network, _ = load_checkpoint(args.network)
    adaptation = Adaptation(rounds=args.rounds, traces_per_round=args.round_traces,
                            steps_per_round=args.steps, tempered_ess=args.tempered_ess)
    command = "python -m simulators.tau_decay --image-source likelihood"
    with SimulatorPool(command, workers=args.workers, timeout=120) as pool:
        for index in (int(event) for event in args.events.split(",")):
            truth, observation = tau_decay.generate_event(FIRST_EVENT_SEED + index, image_source="likelihood")
            truth["log_joint"] = true_log_joint(FIRST_EVENT_SEED + index, truth, "likelihood")
            plain, plain_seconds = timed(lambda: importance_sampling(
                pool, args.traces, observation, proposal=NetworkProposal(network, observation)))
            adapted, adapted_seconds = timed(lambda: adapted_importance_sampling(
                pool, network, args.traces, observation, adaptation, keep_rounds=args.keep_rounds))
            print(f"\nevent {index} ({truth['channel_name']})")
            for record in adapted.adaptation["records"]:
                print(f"  round: ESS {record['ess']:.1f}, alpha {record['alpha']:.3f}, loss {record['loss']:.1f}")
            rows = {}
            for label, posterior, seconds, runs in (
                    ("trained", plain, plain_seconds, args.traces),
                    ("adapted", adapted, adapted_seconds, args.traces + adaptation.runs)):
                rows[label] = row = assess(posterior, truth, seconds, runs, posterior.ess)
                gaps = row["nats_below_truth"]
                cells = "; ".join(f"{name} {row['mean'][name]:.2f} +- {row['std'][name]:.2f} "
                                  f"(truth {truth[name]:.2f}, P(below) {row['mass_below_truth'][name]:.3f})"
                                  for name in MOMENTA)
                print(f"  {label}: ESS {row['ess']:.1f} in {runs} runs, {seconds:.0f} s; best, median trace "
                      f"{gaps['best']:.0f}, {gaps['median']:.0f} nats below the truth; {cells}")
            print(f"  adapted / trained ESS per run: "
                  f"{rows['adapted']['ess_per_run'] / rows['trained']['ess_per_run']:.2f}")


if __name__ == "__main__":
    main()
