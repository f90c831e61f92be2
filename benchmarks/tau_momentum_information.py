"""How much a tau event's observations say about px, py and pz alone: an IC network's proposals against a linear fit.

The IC network proposes px, py and pz first, before the channel and the decay,
so its proposals for them can be no sharper than their marginal posteriors. This
measures how sharp simple summaries of the observation make those: on prior
traces from ``ppx prior --out DIR --shard-size N`` files, a least-squares fit of
each momentum component on the image's total, its energy-weighted centroid in
eta and phi (over voxels above noise), its depth centroid and hottest voxel, and
MET, trained on some traces and scored on others as a proposal: a Gaussian around
the fit with its residual spread, truncated to the prior's interval (gain over
the prior's -log p, nats per trace; the residual spread per channel shows
where the information lies). With ``--network CKPT`` the IC network's own gain at
px, py and pz on the same held-out traces is printed beside it, and its costliest
addresses after.

A linear fit is a reference point, not a bound: a network may find more. But a
network far below it has not yet learnt what plain summaries say.

    python -m benchmarks.tau_momentum_information --dataset 'prior.h5/*.h5' [--network tau.ckpt]
"""

from __future__ import annotations

import argparse
import glob
import math

import numpy as np
import torch

from benchmarks._processes import machine
from benchmarks.tau_embedding import address_losses, format_site_table
from inference.ic.checkpoint import load_checkpoint
from inference.ic.network import observed_values
from inference.trace_file import TraceFile
from ppx.sparse import densified
from simulators import tau_decay
from simulators.tau.channels import CHANNELS
from simulators.tau.detector import ETA_EDGES, PHI_EDGES, VOXELS

MOMENTA = ("px", "py", "pz")
ABOVE_NOISE_GEV = 0.06
"""Three times the voxels' electronic noise."""


def summaries(trace) -> list[float]:
    observed = observed_values(trace)
    image = np.asarray(densified(observed["calorimeter"]), dtype=np.float64).reshape(VOXELS)
    met = np.asarray(densified(observed["met"]), dtype=np.float64)
    hot = np.where(image > ABOVE_NOISE_GEV, image, 0.0)
    weight = hot.sum() + 1e-9
    centres = [(edges[:-1] + edges[1:]) / 2 for edges in (ETA_EDGES, PHI_EDGES)]
    eta = (hot.sum((1, 2)) * centres[0]).sum() / weight
    phi = (hot.sum((0, 2)) * centres[1]).sum() / weight
    depth = (hot.sum((0, 1)) * np.arange(VOXELS[2])).sum() / weight
    total = image.sum()
    return [1.0, total, eta, phi, total * eta, total * phi, depth, image.max(), met[0], met[1]]


def gaussian_gain(truth: np.ndarray, predicted: np.ndarray, spread: float, low: float, high: float) -> float:
    """Mean of the prior's -log p minus a proposal's -log q over traces, the proposal a Gaussian
    around the fit's prediction with the fit's residual spread, truncated to the prior's interval."""
    normal = torch.distributions.Normal(torch.from_numpy(predicted), spread)
    inside = normal.cdf(torch.tensor(high, dtype=torch.float64)) - normal.cdf(torch.tensor(low, dtype=torch.float64))
    log_q = normal.log_prob(torch.from_numpy(truth)) - torch.log(inside)
    return math.log(high - low) + float(log_q.mean())


def momentum_gains(proposal: dict[str, float]) -> dict[str, float]:
    """The network's gain over the prior at px, py and pz from its per-address -log q."""
    gains = {}
    for name in MOMENTA:
        key = next(k for k in proposal if k.split("__")[0] == name)
        low, high = tau_decay.MOMENTUM_PRIOR[name]
        gains[name] = math.log(high - low) - proposal[key]
    return gains


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="glob of trace files from `ppx prior --out DIR ...`")
    parser.add_argument("--fit", type=int, default=2000, help="traces the fit is made on")
    parser.add_argument("--held-out", type=int, default=1000, help="traces it is scored on")
    parser.add_argument("--network", help="an IC checkpoint to score on the same held-out traces")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    path = sorted(glob.glob(args.dataset))[0]
    file = TraceFile(path)
    traces = file.read(len(file) - args.fit - args.held_out, len(file))
    file.close()
    print(f"{len(traces)} traces from the end of {path}")
    features = np.array([summaries(t) for t in traces])
    truth = np.array([[float(t.named(name).value) for name in MOMENTA] for t in traces])
    channel = np.array([int(t.named("channel").value) for t in traces])
    fit, held = slice(0, args.fit), slice(args.fit, None)
    residuals = {}
    gains = {}
    for j, name in enumerate(MOMENTA):
        coefficients, *_ = np.linalg.lstsq(features[fit], truth[fit, j], rcond=None)
        spread = float((truth[fit, j] - features[fit] @ coefficients).std())
        predicted = features[held] @ coefficients
        residuals[name] = truth[held, j] - predicted
        gains[name] = gaussian_gain(truth[held, j], predicted, spread, *tau_decay.MOMENTUM_PRIOR[name])
    scored = {}
    if args.network:
        proposal, prior, count = address_losses(load_checkpoint(args.network)[0], traces[args.fit:])
        scored = momentum_gains(proposal)
    print(f"\n{'':<4}{'prior std':>10}{'fit residual std':>18}{'linear fit gain':>17}"
          + (f"{'IC network gain':>17}" if scored else "") + "   (nats per held-out trace)")
    for name in MOMENTA:
        low, high = tau_decay.MOMENTUM_PRIOR[name]
        line = f"{name:<4}{(high - low) / math.sqrt(12):>10.2f}{residuals[name].std():>18.2f}{gains[name]:>17.2f}"
        print(line + (f"{scored[name]:>17.2f}" if scored else ""))
    print("\nfit residual std per true channel (the proposal cannot know the channel yet):")
    for index, spec in enumerate(CHANNELS.channels):
        rows = channel[held] == index
        if rows.sum() >= 20:
            print(f"  {spec.name:<12} {rows.sum():>5} traces  "
                  + "  ".join(f"{name} {residuals[name][rows].std():.2f}" for name in MOMENTA))
    if scored:
        print(f"\nthe IC network's held-out loss: {sum(proposal.values()):.2f} nats per trace against the "
              f"prior's {sum(prior.values()):.2f} ({count} traces); its costliest addresses:")
        print(format_site_table(proposal, prior))


if __name__ == "__main__":
    main()
