"""CaloGAN-geometry calorimeter shower stage, and a model that infers a particle's kind and energy from it.

The stage, ``shower(kind, energy, rng)``, simulates one electron, photon or
charged pion entering the centre of a three-layer Pb/LAr calorimeter (layers
of 3 x 96, 12 x 12 and 12 x 6 cells; geometry and medium in
``simulators.calo.geometry``) and returns the energy (GeV) the argon sees in
each cell. It is a spot-based fast simulation (``simulators.calo.spots``):
Grindhammer-Peters electromagnetic profiles, a first-interaction plus
electromagnetic-fraction model of pion showers with invisible energy, sampling
fluctuations of 10% (electromagnetic) and 30% (hadronic) / sqrt(E), Landau-like
ionisation, and cell noise. Electrons and photons give a visible sum near the
sampling fraction 0.18 of their energy; pions much less, with large
fluctuations, as 1.2 interaction lengths contain little of their cascade.
It is deliberately the expensive stage: 500 spots per GeV, about 7 ms for a
50 GeV electron (1 ms at 10 GeV, 3 ms for a 50 GeV pion, whose cascade mostly
leaks out) on one core of the 2-core development machine.
``showers(kinds, energies, rng)`` does many at once.

The model:

    kind ~ Categorical(1/3, 1/3, 1/3)               "kind" (0 electron, 1 photon, 2 pion)
    energy ~ Uniform(1, 100) GeV                    "energy"
    shower_seed ~ Uniform(0, 2^32), control=False   "shower_seed"
    layers = shower(kind, energy, Generator(shower_seed))
    tags "layer0" (3, 96), "layer1" (12, 12), "layer2" (12, 6)
    total_energy ~ Normal(sum of cells, sigma)      "total_energy", observed

where sigma adds the summed cell noise and a 2% calibration uncertainty in
quadrature. ``flatten_layers`` and ``split_layers`` convert between the three
layer images and the 504-cell rows of the community HDF5 files (``showers``
(N, 504) next to ``incident_energies`` (N, 1), or per-layer ``layer_0/1/2``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pyro.distributions as dist
import torch

import ppx
from simulators.calo.geometry import LAYERS, NUM_CELLS, SAMPLING_FRACTION, flatten_layers, split_layers
from simulators.calo.kinds import ELECTRON, KINDS, PHOTON, PION, Kind, kind_index, kind_indices
from simulators.calo.mean_profile import mean_depth_profile
from simulators.calo.spots import CELL_NOISE_GEV, simulate

__all__ = [
    "CELL_NOISE_GEV", "ELECTRON", "ENERGY_RANGE", "KINDS", "LAYERS", "NUM_CELLS", "PHOTON", "PION",
    "SAMPLING_FRACTION", "flatten_layers", "kind_index", "mean_depth_profile", "model", "shower", "showers",
    "split_layers",
]

Layers = tuple[np.ndarray, np.ndarray, np.ndarray]

ENERGY_RANGE = (1.0, 100.0)
"""The model's prior on the incident energy, GeV."""
CALIBRATION_UNCERTAINTY = 0.02
SEED_RANGE = 2.0 ** 32


def showers(kinds: Sequence[Kind] | np.ndarray, energies: Sequence[float] | np.ndarray,
            rng: np.random.Generator) -> Layers:
    """Simulate many showers at once.

    Args:
        kinds: N particle kinds, names (``"electron"``, ``"photon"``, ``"pion"``) or numbers 0-2.
        energies: N incident energies in GeV, positive.
        rng: the generator every random number is drawn from.

    Returns:
        The visible cell energies (GeV) of the three layers, shaped (N, 3, 96), (N, 12, 12) and (N, 12, 6).
    """
    kind_array = kind_indices(kinds)
    energy_array = np.asarray(energies, dtype=np.float64).ravel()
    if kind_array.shape != energy_array.shape:
        raise ValueError(f"expected as many energies as kinds, got {energy_array.size} energies "
                         f"for {kind_array.size} kinds")
    if not np.all(np.isfinite(energy_array) & (energy_array > 0.0)):
        raise ValueError(f"expected positive finite energies in GeV, got {energy_array[~(energy_array > 0)][:5]}")
    return split_layers(simulate(kind_array, energy_array, rng))


def shower(kind: Kind, energy: float, rng: np.random.Generator) -> Layers:
    """Simulate one shower: the visible cell energies (GeV) of layers (3, 96), (12, 12) and (12, 6).

    This is the stage a surrogate replaces: any function with this signature
    and these output shapes can stand in for it.
    """
    layer0, layer1, layer2 = showers([kind], [energy], rng)
    return layer0[0], layer1[0], layer2[0]


def _float64(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float64)


def model() -> torch.Tensor:
    """One particle's shower; returns its energy. See the module docstring for the sites."""
    kind = ppx.sample(dist.Categorical(probs=torch.full((len(KINDS),), 1.0 / len(KINDS), dtype=torch.float64)),
                      name="kind")
    energy = ppx.sample(dist.Uniform(_float64(ENERGY_RANGE[0]), _float64(ENERGY_RANGE[1])), name="energy")
    # The stage draws thousands of numbers from its own numpy generator. Its seed is a control=False
    # choice: the engine always takes it from the prior, so the stage's randomness is fresh in every
    # run, as for any nuisance choice, while the trace still records what reproduces the shower.
    seed = ppx.sample(dist.Uniform(_float64(0.0), _float64(SEED_RANGE)), name="shower_seed", control=False)
    layers = shower(int(kind), float(energy), np.random.default_rng(int(seed)))
    for index, layer in enumerate(layers):
        ppx.tag(torch.from_numpy(layer), name=f"layer{index}")
    total = float(sum(layer.sum() for layer in layers))
    sigma = math.hypot(CALIBRATION_UNCERTAINTY * total, math.sqrt(NUM_CELLS) * CELL_NOISE_GEV)
    ppx.observe(dist.Normal(_float64(total), _float64(sigma)), name="total_energy")
    return energy


if __name__ == "__main__":
    from simulators._cli import serve_main

    serve_main(model, description=__doc__.splitlines()[0])
