"""How many credible intervals a calibrated engine would fill on the acceptance run's own truths.

A Uniform prior cuts the posterior off at its bounds, so the central credible
interval of an event whose truth lies next to a bound, observed no better than
the prior's width, ends short of it: py's truth at 2.98 GeV, against a bound of
3 and a posterior as wide as 0.5 GeV, falls outside the central 68% interval of
the exact posterior on almost every data set. Calibration holds over truths
drawn from the prior, and a run whose truths crowd the bounds (the acceptance
run's 24 events put six within 0.2 GeV of py's, where 1.6 are expected) should
fill fewer intervals than the nominal rate without any fault in the engine.

This script asks how many it should fill. Per event and momentum it takes the
likelihood as Gaussian, as wide as the engine's posterior standard deviation
(which truncation narrows, so the estimate errs towards covering, most near the
bounds), draws the likelihood's centre about the truth, forms the exact
posterior (that Gaussian truncated to the prior's interval) and checks whether
its central interval holds the truth; the fraction over draws is the event's
chance of coverage, and their sum over events, with its binomial spread, the
count a calibrated engine gives on these truths, printed beside the run's.

Events whose ESS is below ``--min-ess`` are left out: one or two traces' spread
is no estimate of the posterior's width.

    python -m benchmarks.tau_bound_coverage [--results benchmarks/figures/tau_inference.json]
        [--engine "IC IS"] [--min-ess 2]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy.special import ndtr

from benchmarks.tau_inference import FIRST_EVENT_SEED, LEVELS, MOMENTA
from simulators.tau_decay import MOMENTUM_PRIOR


def coverage_probability(truth: float, width: float, low: float, high: float, level: float,
                         rng: np.random.Generator, draws: int = 20_000) -> float:
    """Chance that the exact posterior's central ``level`` interval holds ``truth``, for data
    whose likelihood is Normal(centre, ``width``) with centre ~ Normal(truth, width) and a
    Uniform(``low``, ``high``) prior."""
    centres = rng.normal(truth, width, size=draws)
    below_low, below_high = ndtr((low - centres) / width), ndtr((high - centres) / width)
    mass = below_high - below_low
    usable = mass > 1e-12
    rank = (ndtr((truth - centres[usable]) / width) - below_low[usable]) / mass[usable]
    return float(np.mean(((1 - level) / 2 <= rank) & (rank <= (1 + level) / 2)))


def true_momenta(event: int) -> dict:
    """px, py and pz of held-out event ``event``: the model's first three draws under its seed."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(FIRST_EVENT_SEED + event)
        unit = torch.rand(len(MOMENTA), dtype=torch.float64)
    return {name: low + (high - low) * float(u)
            for name, (low, high), u in zip(MOMENTA, (MOMENTUM_PRIOR[name] for name in MOMENTA), unit)}


def expected_counts(rows: list, truths: dict, rng: np.random.Generator) -> dict:
    """Per momentum and level: (expected covered count, its standard deviation, observed count)."""
    counts = {}
    for name in MOMENTA:
        low, high = MOMENTUM_PRIOR[name]
        for level in LEVELS:
            chances = np.array([coverage_probability(truths[row["event"]][name], row["std"][name], low, high,
                                                     level, rng) for row in rows])
            observed = sum(row["covered"][f"{name}@{level}"] for row in rows)
            counts[name, level] = (chances.sum(), np.sqrt((chances * (1 - chances)).sum()), observed)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="benchmarks/figures/tau_inference.json",
                        help="tau_inference.json written by benchmarks.tau_inference --out")
    parser.add_argument("--engine", default="IC IS")
    parser.add_argument("--min-ess", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with open(args.results) as handle:
        results = json.load(handle)["results"]
    if args.engine not in results or not results[args.engine]:
        raise SystemExit(f"--engine {args.engine!r}: no rows in {args.results} (engines with rows: "
                         f"{', '.join(name for name, rows in results.items() if rows)})")
    rows = [row for row in results[args.engine] if row["ess"] >= args.min_ess]
    truths = {row["event"]: row.get("truth") or true_momenta(row["event"]) for row in rows}
    print(f"{args.engine}: {len(rows)} of {len(results[args.engine])} events with ESS >= {args.min_ess}")
    for name in MOMENTA:
        low, high = MOMENTUM_PRIOR[name]
        near = sum(min(truths[row['event']][name] - low, high - truths[row['event']][name])
                   < 0.1 * (high - low) for row in rows)
        print(f"  {name}: {near} truths within a tenth of the prior's range of a bound "
              f"({0.2 * len(rows):.1f} expected)")
    counts = expected_counts(rows, truths, np.random.default_rng(args.seed))
    print(f"\n{'':4} {'level':>6} {'nominal':>9} {'calibrated, these truths':>25} {'observed':>9}")
    for (name, level), (expected, spread, observed) in counts.items():
        print(f"{name:4} {level:6.2f} {level * len(rows):9.1f} {expected:17.1f} +- {spread:3.1f} {observed:9d}")


if __name__ == "__main__":
    main()
