"""Is the tau calorimeter's likelihood the distribution its images come from? Residual correlations.

The likelihood (``simulators.tau.observation``) is independent Normal per voxel.
For prior events this script standardises each image by that likelihood's mean
and sigma and correlates the residuals of voxels adjacent in eta and in depth, on
the voxels where showers deposit (mean above 0.04 GeV, twice the noise), pooled
over events. It does so for images made of the shower stage's real showers and
for images drawn from the likelihood itself (``image_source="likelihood"``), the
comparison point whose correlations are zero up to sampling error; it also
prints the spread over events of the summed residual over sqrt(voxels), 1 where
the voxels are independent.

    python -m benchmarks.tau_residuals [--events 40]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmarks._processes import machine
from ppx.messages import RECORD_OBSERVE
from ppx.simulator import record_prior_trace
from simulators import tau_decay

FIRST_SEED = 1_000_000
DEPOSIT_GEV = 0.04


def neighbour_correlations(calorimeters) -> tuple[dict, dict]:
    """Pairs counted and residual correlations between voxels adjacent in eta and in depth, pooled
    over ``(value, mean, sigma)`` images (each shaped ``tau_decay.VOXELS``), on the deposit voxels."""
    pairs = {"eta": ([], []), "depth": ([], [])}
    for value, mean, sigma in calorimeters:
        z = (np.asarray(value, dtype=float) - mean) / sigma
        deposit = mean > DEPOSIT_GEV
        for axis, (first, second) in (("eta", (np.s_[:-1], np.s_[1:])),
                                      ("depth", (np.s_[..., :-1], np.s_[..., 1:]))):
            both = deposit[first] & deposit[second]
            pairs[axis][0].extend(z[first][both])
            pairs[axis][1].extend(z[second][both])
    return ({axis: len(v[0]) for axis, v in pairs.items()},
            {axis: float(np.corrcoef(*v)[0, 1]) for axis, v in pairs.items()})


def residual_statistics(image_source: str, events: int) -> dict:
    calorimeters, summed = [], []
    for seed in range(FIRST_SEED, FIRST_SEED + events):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            records, _ = record_prior_trace(tau_decay.make_model(image_source=image_source))
        observed = next(r for r in records if r.kind == RECORD_OBSERVE and r.name == "calorimeter")
        mean, sigma = (np.asarray(p, dtype=float).reshape(tau_decay.VOXELS) for p in observed.distribution.params)
        value = np.asarray(observed.value, dtype=float).reshape(tau_decay.VOXELS)
        deposit = mean > DEPOSIT_GEV
        if deposit.sum() < 5:
            continue
        calorimeters.append((value, mean, sigma))
        summed.append(((value - mean) / sigma)[deposit].sum() / np.sqrt(deposit.sum()))
    pairs, correlation = neighbour_correlations(calorimeters)
    return {"events": len(summed), "pairs": pairs, "correlation": correlation,
            "summed_spread": float(np.std(summed))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40, help="prior events (those with a deposit are used)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    rows = {source: residual_statistics(source, args.events) for source in tau_decay.IMAGE_SOURCES}
    print(f"{'images':<12}{'events':>7}{'eta pairs':>11}{'corr eta':>10}{'depth pairs':>13}{'corr depth':>12}"
          f"{'summed spread':>15}")
    for source, row in rows.items():
        print(f"{source:<12}{row['events']:>7}{row['pairs']['eta']:>11}{row['correlation']['eta']:>10.3f}"
              f"{row['pairs']['depth']:>13}{row['correlation']['depth']:>12.3f}{row['summed_spread']:>15.2f}")
    error = 1 / np.sqrt(rows["showers"]["pairs"]["depth"])
    print(f"depth correlation, showers minus likelihood images: "
          f"{rows['showers']['correlation']['depth'] - rows['likelihood']['correlation']['depth']:.3f} "
          f"(standard error of each about {error:.3f})")


if __name__ == "__main__":
    main()
