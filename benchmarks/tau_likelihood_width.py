"""How narrow a tau posterior is: the likelihood's width in each latent at the truth, against its prior's.

For each of a few prior events, the event's own trace is replayed with one latent
moved at a time (px, py, pz and the first deposited energies), every other choice
kept, and the log-likelihood of the event's calorimeter image and MET is fitted
by a parabola around the truth. It prints, per latent, the likelihood's width
there (one standard deviation, all other latents held at the truth), the prior's
standard deviation, their ratio (how many times finer than the prior a proposal
must place that latent) and how far the likelihood's peak sits from the truth, in
widths (a likelihood centred far from the truth would keep even exact posteriors
from covering it). These widths are conditional on the other latents: the
marginal posterior of a latent is wider where latents trade off against each other.

    python -m benchmarks.tau_likelihood_width [--events 4] [--first-seed 5000]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from benchmarks._processes import machine
from inference.controllers import Replay
from inference.local import LocalSimulator
from simulators import tau_decay

SCAN_POINTS = 11
MOMENTUM_SCAN = {"px": 0.5, "py": 0.02, "pz": 0.02}
"""Half-range of each scan (GeV); deposits are scanned over +-5% of their value."""
DEPOSIT_SCAN = 0.05
DEPOSITS_PER_EVENT = 2


def scan(simulator: LocalSimulator, previous: dict, observations: dict, key: str, at_truth: float,
         half_range: float) -> tuple[float, float, float]:
    """(width, peak offset, best gain in nats) of the log-likelihood along ``key`` around the truth."""
    true_value = float(previous[key])
    offsets = np.linspace(-half_range, half_range, SCAN_POINTS)
    gains = np.array([simulator.run(Replay(previous, key, np.array(true_value + offset)), observations)
                      .log_likelihood - at_truth for offset in offsets])
    curvature, slope, _ = np.polyfit(offsets, gains, 2)
    if curvature >= 0:  # flat or no peak inside the scan: the likelihood does not pin this latent here
        return float("inf"), float("nan"), float(gains.max())
    return math.sqrt(-0.5 / curvature), -slope / (2 * curvature), float(gains.max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4)
    parser.add_argument("--first-seed", type=int, default=5000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    simulator = LocalSimulator(tau_decay.make_model())
    print(f"machine: {machine()}")
    print(f"{'event':>5} {'channel':<12} {'latent':<24} {'width':>8} {'prior std':>9} {'ratio':>7} "
          f"{'peak (widths)':>13} {'gain':>6}")
    for event in range(args.events):
        torch.manual_seed(args.first_seed + event)
        truth = simulator.run()
        observations = {name: truth.named(name).value for name in ("calorimeter", "met")}
        controlled = {choice.key: choice for choice in truth.samples if choice.control}
        previous = {key: choice.value for key, choice in controlled.items()}
        at_truth = simulator.run(Replay(previous, "", None), observations).log_likelihood
        channel = tau_decay.CHANNELS[int(truth.named("channel").value)].name
        deposits = [key for key in previous if "_deposit__" in key][:DEPOSITS_PER_EVENT]
        for key in [f"{name}__Uniform__0" for name in MOMENTUM_SCAN] + deposits:
            half_range = MOMENTUM_SCAN.get(key.split("__")[0], DEPOSIT_SCAN * float(previous[key]))
            width, peak, gain = scan(simulator, previous, observations, key, at_truth, half_range)
            std = float(controlled[key].distribution.stddev)
            print(f"{event:>5} {channel:<12} {controlled[key].name:<24} {width:8.4f} {std:9.3f} {std / width:7.0f} "
                  f"{peak / width:13.1f} {gain:6.1f}")


if __name__ == "__main__":
    main()
