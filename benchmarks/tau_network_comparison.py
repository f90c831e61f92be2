"""Two or more tau IC networks scored on the same held-out traces, site group by site group.

Each network's -log q of held-out prior traces (conditioned on each trace's own
observations) is split by group of sites (``benchmarks.tau_proposal_surprise``'s
groups: momentum, channel, decay angles, masses with their rejection loops,
deposits) beside the prior's -log p there; the gain over the prior is what a
network has learnt from the observations. The last lines give each network's
total against the first's as the mean of per-trace differences with its standard
error, so that a difference can be told from the draw of traces.

To compare observation embeddings, train networks on the same files with the
same ``--seed`` (the same batches in the same order), e.g.::

    ppx train --dataset prior.h5/prior-00000[1-9].h5 prior.h5/prior-00001?.h5 -n 250000 \\
        --seed 1 --threads 1 --embedding calorimeter=cnn --out cnn.ckpt
    (the same with --embedding calorimeter=cnn-clusters --out cnn-clusters.ckpt)
    python -m benchmarks.tau_network_comparison --dataset prior.h5/prior-000000.h5 \\
        --networks cnn.ckpt cnn-clusters.ckpt
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from benchmarks._processes import machine
from benchmarks.tau_embedding import known
from benchmarks.tau_proposal_surprise import GROUPS, site_group
from inference.ic.checkpoint import load_checkpoint
from inference.ic.network import controlled_samples
from inference.trace import Trace
from inference.trace_file import TraceFile

BATCH = 64


def scored(network, traces: list[Trace]) -> tuple[np.ndarray, dict[str, float]]:
    """Each trace's -log q, and -log q per site group in nats per trace."""
    per_address: dict[str, float] = {}
    totals = []
    network.eval()
    with torch.no_grad():
        for start in range(0, len(traces), BATCH):
            totals.append(-network.log_q(traces[start:start + BATCH], per_address=per_address).numpy())
    groups = dict.fromkeys(GROUPS, 0.0)
    for key, value in per_address.items():
        groups[site_group(key)] += value / len(traces)
    return np.concatenate(totals), groups


def prior_groups(traces: list[Trace]) -> dict[str, float]:
    """The prior's -log p per site group in nats per trace."""
    groups = dict.fromkeys(GROUPS, 0.0)
    for trace in traces:
        for choice in controlled_samples(trace):
            groups[site_group(choice.key)] -= choice.log_prob / len(traces)
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="a trace file none of the networks trained on")
    parser.add_argument("--networks", nargs="+", required=True, help="IC checkpoints; the first is the reference")
    parser.add_argument("--traces", type=int, default=1000, help="held-out traces, from the file's start")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {machine()}")
    with TraceFile(args.dataset) as file:
        traces = file.read(0, args.traces)
    networks = [load_checkpoint(path)[0] for path in args.networks]
    for network in networks:
        traces = known(network, traces)
    print(f"{len(traces)} held-out traces of {args.dataset} that every network knows the addresses of")
    prior = prior_groups(traces)
    results = [scored(network, traces) for network in networks]
    width = max(len(path) for path in args.networks) + 2
    print(f"\n{'-log q per trace (nats)':<{width}}" + "".join(f"{group:>10}" for group in GROUPS) + f"{'total':>10}")
    print(f"{'prior':<{width}}" + "".join(f"{prior[g]:>10.2f}" for g in GROUPS) + f"{sum(prior.values()):>10.2f}")
    for path, (totals, groups) in zip(args.networks, results):
        print(f"{path:<{width}}" + "".join(f"{groups[g]:>10.2f}" for g in GROUPS) + f"{totals.mean():>10.2f}")
    print(f"\n{'gain over the prior':<{width}}" + "".join(f"{group:>10}" for group in GROUPS))
    for path, (_, groups) in zip(args.networks, results):
        print(f"{path:<{width}}" + "".join(f"{prior[g] - groups[g]:>10.2f}" for g in GROUPS))
    reference = results[0][0]
    for path, (totals, _) in zip(args.networks[1:], results[1:]):
        difference = totals - reference
        error = difference.std(ddof=1) / math.sqrt(len(difference))
        print(f"\n{path} minus {args.networks[0]}: {difference.mean():+.2f} +- {error:.2f} nats per trace "
              f"({difference.mean() / error:+.1f} standard errors; lower is better)")


if __name__ == "__main__":
    main()
