"""Where the IC network's tau proposals miss the truth, site group by site group.

For each held-out event of ``benchmarks.tau_inference`` (same seeds) the true trace
is scored under the trained network conditioned on the event's observations, and
so are ``--draws`` traces the network itself proposes. Per group of sites (the tau
momentum, the channel, the decay angles, the resonance masses with their rejection
loops, the calorimeter deposits) it prints -log q of the truth, the same averaged
over the network's own draws (the proposal's entropy there), and their difference:
the *surprise*. A proposal that holds the truth within its spread has a surprise of
a few nats at most; tens of nats in one group say the network is sure of the wrong
values there, and that group is where the importance weights collapse.

    python -m benchmarks.tau_proposal_surprise --network tau.ckpt --events 8 --draws 200
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
import torch

from benchmarks._processes import machine
from benchmarks.tau_inference import held_out_ic_runs
from inference.trace import Trace

GROUPS = ("momentum", "channel", "angles", "masses", "deposits")


def site_group(key: str) -> str:
    name = key.split("__")[0].rsplit("/", 1)[-1]
    if name in ("px", "py", "pz"):
        return "momentum"
    if name == "channel":
        return "channel"
    if name.endswith("_deposit"):
        return "deposits"
    if name.endswith(("_cos_theta", "_phi", "_psi")):
        return "angles"
    return "masses"


def grouped_surprisal(network, traces: list[Trace], embedding: torch.Tensor) -> np.ndarray:
    """(traces, groups): each trace's -log q summed over its sites in each group."""
    rows = np.zeros((len(traces), len(GROUPS)))
    with torch.no_grad():
        for row, trace in enumerate(traces):
            per_address: dict[str, float] = {}
            network.log_q([trace], embedding, per_address=per_address)
            for key, surprisal in per_address.items():
                rows[row, GROUPS.index(site_group(key))] += surprisal
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", required=True, help="IC checkpoint trained on likelihood-image tau traces")
    parser.add_argument("--events", type=int, default=8, help="held-out events")
    parser.add_argument("--draws", type=int, default=200, help="network draws per event")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    header = f"{'event':<22}" + "".join(f"{group:>22}" for group in GROUPS)
    print("-log q of the truth / mean over the network's draws / surprise (nats)")
    print(header)
    totals = defaultdict(list)
    for run in held_out_ic_runs(args.network, args.events, args.draws, args.workers):
        embedding = run.proposal.observation_embedding
        at_truth = grouped_surprisal(run.network, [run.true_trace], embedding)[0]
        entropy = grouped_surprisal(run.network, run.posterior.traces, embedding).mean(axis=0)
        surprise = at_truth - entropy
        for group, value in zip(GROUPS, surprise):
            totals[group].append(value)
        cells = "".join(f"{a:>8.1f}{e:>7.1f}{s:>7.1f}" for a, e, s in zip(at_truth, entropy, surprise))
        print(f"{run.event} {run.truth['channel_name']:<20}{cells}")
    print(f"{'median surprise':<22}" + "".join(f"{np.median(totals[group]):>22.1f}" for group in GROUPS))


if __name__ == "__main__":
    main()
