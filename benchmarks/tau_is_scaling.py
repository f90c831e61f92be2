"""How IC importance sampling on tau events improves with its number of simulator runs.

On each held-out event of ``benchmarks.tau_inference`` (same seeds) IC IS and prior IS
each draw ``--traces`` runs once; the first N of them, for N doubling from
``--smallest``, are weighed as a posterior of their own. Per engine and N it prints
the mean ESS, how far below the true trace's log p(x, y) the best trace lies (median
over events) and how many of the px/py/pz 68% intervals hold the truth, then the
ratio of IC's ESS to prior IS's at the same N.

The best trace's gap is the engine's distance from the posterior: a proposal that
reaches the posterior's typical set puts traces at about the truth's log p(x, y)
(the truth is one posterior draw), and only then do the weights spread over more
than a handful of traces. Per event the script prints that gap at each prefix and
how many nats it gains per doubling of the runs (a straight fit in log2 N); the
gains come in rare jumps, so no extrapolation to a budget is attempted.
``--out`` gets the numbers and ``best_trace_gaps.png`` (each event's best gap against the runs).
(Every weight warning is silenced: the small prefixes are meant to be poor.)

    python -m benchmarks.tau_is_scaling --network tau.ckpt --events 8 --traces 6000
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks._processes import start_run
from benchmarks.tau_inference import FIRST_EVENT_SEED, MOMENTA, below_truth, covered, true_log_joint
from inference import plots
from inference.ic import NetworkProposal
from inference.ic.adapt import quiet_weight_warnings
from inference.ic.checkpoint import load_checkpoint
from inference.importance import importance_sampling
from inference.pool import SimulatorPool
from inference.posterior import Posterior
from simulators import tau_decay

ENGINES = ("IC IS", "prior IS")


def prefix_sizes(smallest: int, largest: int) -> list[int]:
    sizes = []
    size = smallest
    while size < largest:
        sizes.append(size)
        size *= 2
    return sizes + [largest]


def measure(posterior: Posterior, truth: dict, sizes: list[int]) -> list[dict]:
    """ESS, the gaps below the truth and the 68% coverage of the first N traces, for each N."""
    rows = []
    for size in sizes:
        first = Posterior(posterior.traces[:size], posterior.log_weights[:size])
        rows.append({"runs": size, "ess": first.ess, "below_truth": below_truth(first, truth),
                     "covered": {name: covered(first, name, truth[name], 0.68) for name in MOMENTA}})
    return rows


def gain_per_doubling(sizes: list[int], best_gaps: list[float]) -> float:
    """Nats the best trace gains per doubling of the runs: the slope of a straight fit in log2 N."""
    return float(-np.polyfit(np.log2(sizes), best_gaps, 1)[0])


def best_gaps(rows: list[dict]) -> list[float]:
    """One event's best-trace gap below the truth at each prefix."""
    return [row["below_truth"]["best"] for row in rows]


def report(results: dict[str, list[list[dict]]], sizes: list[int]) -> None:
    events = len(results["IC IS"])
    print(f"\n{'engine':<10}{'runs':>7}{'mean ESS':>10}{'best, median trace below the truth':>38}"
          f"{'px/py/pz in 68%':>18}")
    for engine, per_event in results.items():
        for column, size in enumerate(sizes):
            rows = [event[column] for event in per_event]
            best = np.median([row["below_truth"]["best"] for row in rows])
            median = np.median([row["below_truth"]["median"] for row in rows])
            hits = "/".join(str(sum(row["covered"][name] for row in rows)) for name in MOMENTA)
            print(f"{engine:<10}{size:>7}{np.mean([row['ess'] for row in rows]):>10.2f}"
                  f"{f'{best:.0f}, {median:.0f} nats':>38}{f'{hits} of {events}':>18}")
    print()
    for column, size in enumerate(sizes):
        ic, prior = (np.mean([event[column]["ess"] for event in results[engine]]) for engine in ENGINES)
        print(f"ESS ratio IC IS / prior IS at {size} runs: {ic / prior:.2f}")
    print("\nper event, the best trace's gap below the truth at each prefix (nats):")
    for engine, per_event in results.items():
        for index, rows in enumerate(per_event):
            gaps = best_gaps(rows)
            print(f"  {engine:<9} event {index}: " + ", ".join(f"{gap:.0f}" for gap in gaps)
                  + f"; {gain_per_doubling(sizes, gaps):.1f} nats gained per doubling")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", required=True, help="IC checkpoint (ppx train)")
    parser.add_argument("--events", type=int, default=8, help="held-out events")
    parser.add_argument("--traces", type=int, default=6000, help="simulator runs per engine per event")
    parser.add_argument("--smallest", type=int, default=250, help="the smallest prefix weighed")
    parser.add_argument("--image-source", choices=tau_decay.IMAGE_SOURCES, default="likelihood")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="tau-is-scaling-output",
                        help="folder for tau_is_scaling.json and best_trace_gaps.png")
    args = parser.parse_args()
    start_run()
    network, _ = load_checkpoint(args.network)
    sizes = prefix_sizes(args.smallest, args.traces)
    results: dict[str, list[list[dict]]] = {engine: [] for engine in ENGINES}
    command = f"python -m simulators.tau_decay --image-source {args.image_source}"
    with SimulatorPool(command, workers=args.workers, timeout=120) as pool, quiet_weight_warnings():
        for index in range(args.events):
            seed = FIRST_EVENT_SEED + index
            truth, observation = tau_decay.generate_event(seed, image_source=args.image_source)
            truth["log_joint"] = true_log_joint(seed, truth, args.image_source)
            proposals = {"IC IS": NetworkProposal(network, observation), "prior IS": None}
            for engine, proposal in proposals.items():
                posterior = importance_sampling(pool, args.traces, observation, proposal=proposal)
                results[engine].append(measure(posterior, truth, sizes))
            print(f"event {index} ({truth['channel_name']}): " + "; ".join(
                f"{engine} ESS {results[engine][-1][-1]['ess']:.1f}, best trace "
                f"{results[engine][-1][-1]['below_truth']['best']:.0f} nats below" for engine in ENGINES), flush=True)
    report(results, sizes)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plots.gap_against_runs(sizes, {engine: [best_gaps(rows) for rows in per_event]
                                   for engine, per_event in results.items()}, out / "best_trace_gaps.png")
    (out / "tau_is_scaling.json").write_text(json.dumps({"args": vars(args), "sizes": sizes, "results": results},
                                                        indent=2, default=float))


if __name__ == "__main__":
    main()
