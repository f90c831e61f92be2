"""Has IC importance sampling looked where the truth lies? The true trace's weight against the draws'.

A simulated event's true trace is a draw from the event's posterior. Weighed as
importance sampling weighs its own draws, w* = p(x*, y) / q(x*), its ratio to
the run's evidence estimate Z (the mean weight) is pi(x*) / q(x*): of order one
where the proposal covers the posterior, and far above the number of runs N
where the proposal seldom goes where the truth lies. There the truth, had it
been drawn, would have taken most of the weight (its share, w* / (N Z + w*), is
printed), and the run's posterior says little about that region. So an interval
that misses the truth is the model's posterior when the share is small, and the
proposal's failure when it is large.

The truth is weighed like the draws: its likelihood plus, at each controlled
sample whose address the network knows, prior minus proposal log density (the
other samples come from the prior in both). The script checks that this formula
gives the draws' own recorded log weights.

    python -m benchmarks.tau_truth_weight --network tau.ckpt [--events 24] [--traces 1000]
"""

from __future__ import annotations

import argparse
import math

import torch

from benchmarks._processes import machine
from benchmarks.tau_inference import MOMENTA, held_out_ic_runs
from inference.ic.network import controlled_samples
from inference.trace import Trace, fill_log_probs


def log_weight(network, trace: Trace, embedding: torch.Tensor) -> float:
    """log p(x, y) - log q(x) for ``trace`` under the network's proposal for the event embedded."""
    proposed = [choice for choice in controlled_samples(trace) if network.knows(choice.key)]
    fill_log_probs(list(trace.observes) + proposed)
    with torch.no_grad():
        log_q = float(network.log_q([trace], embedding)[0])
    return trace.log_likelihood + sum(choice.log_prob for choice in proposed) - log_q


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", required=True, help="IC checkpoint trained on likelihood-image tau traces")
    parser.add_argument("--events", type=int, default=24, help="held-out events")
    parser.add_argument("--traces", type=int, default=1000, help="IC runs per event")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"{'event':<18}{'ESS':>7}" + "".join(f"{name + ' rank':>10}" for name in MOMENTA)
          + f"{'log(w*/Z)':>11}{'truth share':>13}{'formula check':>15}")
    for run in held_out_ic_runs(args.network, args.events, args.traces, args.workers):
        embedding, posterior = run.proposal.observation_embedding, run.posterior
        check = max(abs(log_weight(run.network, trace, embedding) - trace.log_importance_weight)
                    for trace in posterior.traces[:20])
        ratio = log_weight(run.network, run.true_trace, embedding) - posterior.log_evidence
        share = 1.0 / (1.0 + args.traces * math.exp(-ratio)) if ratio > -700 else 0.0
        ranks = "".join(f"{float(posterior.cdf(name, run.truth[name])):>10.3f}" for name in MOMENTA)
        print(f"{run.event:<3}{run.truth['channel_name']:<15}{posterior.ess:>7.1f}{ranks}{ratio:>11.1f}"
              f"{share:>13.3f}{check:>15.1e}", flush=True)


if __name__ == "__main__":
    main()
