"""LArTPC events: a 3D pixel liquid-argon TPC image of one particle (muon, proton or electron shower).

A particle of kind ``kind`` (muon, proton or electron, equally likely) starts
at ``vertex_x/y/z`` (uniform in the central 60 cm of a 1 m cube), along the
direction (``cos_theta``, ``phi``) (isotropic), with kinetic energy ``energy``
(uniform in 50-500 MeV). The detector is the cube cut into ``size``^3 voxels.

* Muons and protons are tracks. Their stopping power follows the residual-range
  law dE/dx = A r^-0.42 (+ a minimum-ionising floor for muons), so a track's
  range grows with its energy and its deposits rise into a Bragg peak at the
  end; multiple scattering bends it (Highland angle per step).
* Electrons shower: each generation a charged particle ionises along an
  exponential path of one radiation length and radiates a photon taking a
  uniform fraction of its energy; a photon converts to an e+e- pair after a
  free path of 9/7 radiation lengths. Below the critical energy charged
  particles range out and photons convert once more and stop branching.

Deposits are summed per voxel; voxels below ``THRESHOLD_MEV`` are dropped.
``event(size)`` returns the sparse image as (coordinates (N, 3), energies (N,)).

Observation (``observe``). The model observes ``image`` in one of two forms:

* ``"summary"`` (the default): the deposits summed into a coarse
  ``summary_size``^3 grid, as log(1 + E/MeV), under Normal noise of
  ``SUMMARY_NOISE``. Small at any ``size``, and its coarse sums average out the
  voxel-level fluctuations of the deposits.
* ``"sparse"``: the full ``size``^3 image, log(1 + E/MeV) at each active voxel,
  as a ``ppx.sparse.SparseArray``, under ``SparseNormal`` noise of
  ``SPARSE_NOISE`` on every voxel. The likelihood is computed over the voxels
  active in the prediction or the data (voxels empty in both add a constant),
  so it costs O(N), not O(size^3). Engines with the ``sparse-tensor`` extension
  receive the image as its active voxels (a 256^3 shower of a few hundred
  voxels is a frame of 10-30 kB, a dense tensor 134 MB); plain PPX engines
  receive it dense. The IC network embeds it with the sparse 3D CNN, which
  sees every active voxel.

The randomness of the deposits themselves (fluctuations, scattering, shower
branching) is drawn from torch's generator and not recorded, like detector
noise: weights stay unbiased for the likelihood with it marginalised, but each
trace compares one realisation with the data. Two realisations of one primary
differ by 0.6-1.7 in log(1 + E) per active voxel, hence ``SPARSE_NOISE`` = 1.
Measured on a 300 MeV muon against four alternatives (proton, electron, vertex
20 cm away, 80 MeV), five realisations each: the summary ranks the true latents
first at 32^3 and 128^3, though its log-likelihood varies by 200-350 nats between
realisations; the sparse likelihood varies by about 15 nats but ranks a shorter
track above the truth and barely separates the shifted vertex at 128^3, because
scattering moves a long track's far voxels from one realisation to the next.
That is why ``summary`` is the default. Use ``sparse`` to train IC networks on the
full image and to carry and store full events, and treat importance weights
computed with its likelihood with caution. Deposit generation (``deposits``) is
separate from the likelihoods (``summary_image``/``sparse_image`` + ``model``).

    python -m simulators.lartpc --address ADDR [--size 128] [--summary-size 8] [--observe summary|sparse]
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Callable, Literal, Optional

import pyro.distributions as dist
import torch

import ppx
from ppx.sparse import SparseArray
from ppx.sparse_normal import SparseNormal

KINDS = ("muon", "proton", "electron")
KIND_PROBS = (1 / 3, 1 / 3, 1 / 3)
DETECTOR_CM = 100.0
"""Side of the cubic active volume."""
VERTEX_RANGE_CM = (20.0, 80.0)
ENERGY_RANGE_MEV = (50.0, 500.0)
DEFAULT_SIZE = 128
DEFAULT_SUMMARY_SIZE = 8
SUMMARY_NOISE = 0.25
"""Standard deviation of the observed log(1 + E/MeV) per coarse voxel."""
SPARSE_NOISE = 1.0
"""Standard deviation of the observed log(1 + E/MeV) per voxel of the full sparse image: about the
voxel-to-voxel spread between two realisations of one primary."""
Observation = Literal["summary", "sparse"]
OBSERVATIONS: tuple[str, ...] = ("summary", "sparse")
DEFAULT_OBSERVATION: Observation = "summary"
THRESHOLD_MEV = 0.05
"""Voxels with less deposited energy are not read out."""

MASS_MEV = {"muon": 105.66, "proton": 938.27, "electron": 0.511}
STOPPING = {"muon": (4.0, 1.8), "proton": (17.0, 0.0)}
"""(A in MeV/cm^0.58, minimum-ionising floor in MeV/cm): dE/dx = A r^RANGE_EXPONENT + floor."""
RANGE_EXPONENT = -0.42
RADIATION_LENGTH_CM = 14.0
CRITICAL_ENERGY_MEV = 30.0
MIP_DEDX = 2.1
"""MeV/cm lost to ionisation by shower electrons."""
FLUCTUATION = 0.2
"""Log-normal spread of each step's deposit."""
MAX_SHOWER_GENERATIONS = 40


@dataclass(frozen=True)
class Primary:
    """The particle that makes an event, with its starting point, direction and kinetic energy."""

    kind: str
    vertex: tuple[float, float, float]
    """cm, inside the (0, DETECTOR_CM)^3 cube."""
    direction: tuple[float, float, float]
    energy: float
    """Kinetic energy in MeV."""


def direction_from_angles(cos_theta: float, phi: float) -> tuple[float, float, float]:
    sin_theta = math.sqrt(max(0.0, 1.0 - cos_theta ** 2))
    return sin_theta * math.cos(phi), sin_theta * math.sin(phi), cos_theta


def sample_primary(generator: Optional[torch.Generator] = None) -> Primary:
    """A primary drawn from the model's prior without ``ppx`` (for datasets and benchmarks)."""
    uniform = torch.rand(7, generator=generator, dtype=torch.float64).tolist()
    low, high = VERTEX_RANGE_CM
    vertex = tuple(low + (high - low) * u for u in uniform[:3])
    kind = KINDS[min(int(uniform[3] * len(KINDS)), len(KINDS) - 1)]
    energy = ENERGY_RANGE_MEV[0] + (ENERGY_RANGE_MEV[1] - ENERGY_RANGE_MEV[0]) * uniform[4]
    return Primary(kind, vertex, direction_from_angles(2 * uniform[5] - 1, 2 * math.pi * uniform[6]), energy)


def _remaining_energy(kind: str, residual_range: torch.Tensor) -> torch.Tensor:
    """Kinetic energy of a track with ``residual_range`` cm left: the integral of dE/dx."""
    scale, floor = STOPPING[kind]
    power = 1 + RANGE_EXPONENT
    return scale / power * residual_range.clamp(min=0) ** power + floor * residual_range.clamp(min=0)


def _range(kind: str, energy: float) -> float:
    """The residual range whose remaining energy is ``energy``, by bisection (the law is monotone)."""
    scale, _ = STOPPING[kind]
    low, high = 0.0, (energy * (1 + RANGE_EXPONENT) / scale) ** (1 / (1 + RANGE_EXPONENT))
    for _ in range(60):
        middle = 0.5 * (low + high)
        if float(_remaining_energy(kind, torch.tensor(middle, dtype=torch.float64))) < energy:
            low = middle
        else:
            high = middle
    return high


def _perpendicular_basis(direction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two unit vectors perpendicular to each row of (M, 3) unit ``direction`` and to each other."""
    helper = torch.zeros_like(direction)
    helper[:, 0] = 1.0
    helper[direction[:, 0].abs() > 0.9] = torch.tensor([0.0, 1.0, 0.0], dtype=direction.dtype)
    first = torch.linalg.cross(direction, helper)
    first = first / first.norm(dim=1, keepdim=True)
    return first, torch.linalg.cross(direction, first)


def _fluctuate(energy: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    noise = torch.randn(energy.shape, generator=generator, dtype=energy.dtype)
    return energy * torch.exp(FLUCTUATION * noise - FLUCTUATION ** 2 / 2)


def _track_points(primary: Primary, step: float, generator: Optional[torch.Generator]
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Deposit points (P, 3) in cm and energies (P,) along a muon or proton track."""
    total_range = _range(primary.kind, primary.energy)
    num_steps = max(1, math.ceil(total_range / step))
    residual = total_range - step * torch.arange(num_steps + 1, dtype=torch.float64)
    remaining = _remaining_energy(primary.kind, residual)
    deposited = remaining[:-1] - remaining[1:]
    mass = MASS_MEV[primary.kind]
    kinetic = remaining[:-1]
    momentum_squared = kinetic ** 2 + 2 * mass * kinetic
    beta_momentum = momentum_squared / (kinetic + mass)
    highland = 13.6 / beta_momentum.clamp(min=1e-3) * math.sqrt(step / RADIATION_LENGTH_CM)
    kicks = highland.clamp(max=0.5).unsqueeze(1) * torch.randn((num_steps, 2), generator=generator,
                                                                  dtype=torch.float64)
    angles = kicks.cumsum(0)
    direction = torch.tensor(primary.direction, dtype=torch.float64).unsqueeze(0)
    first, second = _perpendicular_basis(direction)
    directions = direction + angles[:, :1] * first + angles[:, 1:] * second
    directions = directions / directions.norm(dim=1, keepdim=True)
    ends = torch.tensor(primary.vertex, dtype=torch.float64) + step * directions.cumsum(0)
    midpoints = ends - 0.5 * step * directions
    return midpoints, _fluctuate(deposited, generator)


def _kick(directions: torch.Tensor, energies: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Directions deflected by a random angle of about 8 MeV / E (at most 0.6 rad)."""
    first, second = _perpendicular_basis(directions)
    spread = (8.0 / energies.clamp(min=1e-3)).clamp(max=0.6).unsqueeze(1)
    angles = spread * torch.randn((len(directions), 2), generator=generator, dtype=directions.dtype)
    kicked = directions + angles[:, :1] * first + angles[:, 1:] * second
    return kicked / kicked.norm(dim=1, keepdim=True)


def _shower_segments(primary: Primary, generator: Optional[torch.Generator]
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Straight ionising segments of an electromagnetic shower: starts, directions, lengths, energies."""
    position = torch.tensor([primary.vertex], dtype=torch.float64)
    direction = torch.tensor([primary.direction], dtype=torch.float64)
    energy = torch.tensor([primary.energy], dtype=torch.float64)
    charged = torch.tensor([True])
    segments: list[tuple[torch.Tensor, ...]] = []
    for _ in range(MAX_SHOWER_GENERATIONS):
        if len(energy) == 0:
            break
        branching = energy > CRITICAL_ENERGY_MEV
        mean_path = torch.where(charged, RADIATION_LENGTH_CM, RADIATION_LENGTH_CM * 9 / 7)
        path = -mean_path * torch.rand(len(energy), generator=generator, dtype=torch.float64).log()
        # Photons fly without ionising; charged particles ionise, and range out below the critical energy.
        ionised = torch.where(charged, torch.minimum(MIP_DEDX * path, energy), torch.zeros_like(energy))
        ionised = torch.where(charged & ~branching, energy, ionised)
        length = torch.where(charged & ~branching, energy / MIP_DEDX, path)
        segments.append((position[charged], direction[charged], length[charged], ionised[charged]))
        # Photons below the critical energy convert once more into a charged particle that stops branching.
        end = position + length.unsqueeze(1) * direction
        left = energy - ionised
        alive = (branching | ~charged) & (left > 0)
        fraction = torch.rand(len(energy), generator=generator, dtype=torch.float64)
        fraction = torch.where(branching, fraction, torch.zeros_like(fraction))  # a single child takes it all
        children_energy = torch.cat((left * fraction, left * (1 - fraction)))
        children_charged = torch.cat((~charged, torch.ones_like(charged)))
        keep = torch.cat((alive & branching, alive))
        position = torch.cat((end, end))[keep]
        energy = children_energy[keep]
        charged = children_charged[keep]
        direction = _kick(torch.cat((direction, direction))[keep], energy, generator)
    starts, directions, lengths, energies = (torch.cat(parts) for parts in zip(*segments))
    return starts, directions, lengths, energies


def _segment_points(starts: torch.Tensor, directions: torch.Tensor, lengths: torch.Tensor, energies: torch.Tensor,
                    step: float, generator: Optional[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    """Points every ``step`` cm along straight segments, sharing each segment's energy."""
    counts = torch.ceil(lengths / step).clamp(min=1).long()
    segment = torch.repeat_interleave(torch.arange(len(counts)), counts)
    first_point = torch.cumsum(counts, 0) - counts
    index_in_segment = torch.arange(int(counts.sum())) - first_point[segment]
    fraction = (index_in_segment + 0.5).to(torch.float64) / counts[segment]
    points = starts[segment] + (fraction * lengths[segment]).unsqueeze(1) * directions[segment]
    return points, _fluctuate(energies[segment] / counts[segment], generator)


def voxelise(points: torch.Tensor, energies: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum point deposits (cm) into the voxels of a ``size``^3 grid; drop those under threshold.

    Returns:
        (N, 3) int64 voxel coordinates in increasing (x, y, z) order and their (N,) float64 energies.
    """
    voxel = torch.floor(points * (size / DETECTOR_CM)).long()
    inside = ((voxel >= 0) & (voxel < size)).all(1)
    voxel, energies = voxel[inside], energies[inside]
    keys = (voxel[:, 0] * size + voxel[:, 1]) * size + voxel[:, 2]
    unique_keys, slot = torch.unique(keys, return_inverse=True)
    summed = torch.zeros(len(unique_keys), dtype=torch.float64).index_add_(0, slot, energies)
    readout = summed >= THRESHOLD_MEV
    unique_keys, summed = unique_keys[readout], summed[readout]
    coordinates = torch.stack((unique_keys // (size * size), (unique_keys // size) % size, unique_keys % size), 1)
    return coordinates, summed


def deposits(primary: Primary, size: int = DEFAULT_SIZE, generator: Optional[torch.Generator] = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The sparse image of one primary in a ``size``^3 detector.

    Returns:
        (N, 3) int64 voxel coordinates and (N,) float64 energies in MeV.
    """
    if primary.kind not in KINDS:
        raise ValueError(f"expected a particle kind in {KINDS}, got {primary.kind!r}")
    if size < 1:
        raise ValueError(f"expected a positive detector size in voxels, got {size}")
    step = 0.5 * DETECTOR_CM / size
    if primary.kind == "electron":
        points, energies = _segment_points(*_shower_segments(primary, generator), step, generator)
    else:
        points, energies = _track_points(primary, step, generator)
    return voxelise(points, energies, size)


def event(size: int = DEFAULT_SIZE, generator: Optional[torch.Generator] = None
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """A prior event: (N, 3) int64 voxel coordinates and (N,) float64 energies in MeV."""
    return deposits(sample_primary(generator), size, generator)


def summary_image(coordinates: torch.Tensor, energies: torch.Tensor, size: int,
                  summary_size: int = DEFAULT_SUMMARY_SIZE) -> torch.Tensor:
    """log(1 + E/MeV) of the energies summed into a coarse ``summary_size``^3 grid (float64)."""
    coarse = coordinates * summary_size // size
    keys = (coarse[:, 0] * summary_size + coarse[:, 1]) * summary_size + coarse[:, 2]
    summed = torch.zeros(summary_size ** 3, dtype=torch.float64).index_add_(0, keys, energies)
    return summed.log1p().reshape(summary_size, summary_size, summary_size)


def sparse_image(coordinates: torch.Tensor, energies: torch.Tensor, size: int) -> SparseArray:
    """log(1 + E/MeV) at the active voxels of a ``size``^3 image, as a sparse array (nothing densified)."""
    return SparseArray(coordinates.numpy(), energies.log1p().numpy(), (size, size, size))


def _uniform(low: float, high: float) -> dist.Uniform:
    return dist.Uniform(torch.tensor(low, dtype=torch.float64), torch.tensor(high, dtype=torch.float64))


def model(size: int = DEFAULT_SIZE, summary_size: int = DEFAULT_SUMMARY_SIZE,
          observe: Observation = DEFAULT_OBSERVATION) -> torch.Tensor:
    """One LArTPC event under ``ppx``: latent primary, deposits, observed ``image``.

    ``observe="summary"`` observes the coarse ``summary_size``^3 image under
    ``Normal`` noise; ``observe="sparse"`` the full ``size``^3 image of
    log(1 + E/MeV) per voxel under ``SparseNormal`` noise (see the module docstring).

    Returns:
        The visible energy (MeV), also tagged as ``visible_energy``.
    """
    vertex = tuple(float(ppx.sample(_uniform(*VERTEX_RANGE_CM), name=f"vertex_{axis}")) for axis in "xyz")
    kind = ppx.sample(dist.Categorical(probs=torch.tensor(KIND_PROBS, dtype=torch.float64)), name="kind")
    energy = ppx.sample(_uniform(*ENERGY_RANGE_MEV), name="energy")
    cos_theta = ppx.sample(_uniform(-1.0, 1.0), name="cos_theta")
    phi = ppx.sample(_uniform(0.0, 2 * math.pi), name="phi")
    primary = Primary(KINDS[int(kind)], vertex, direction_from_angles(float(cos_theta), float(phi)), float(energy))
    coordinates, energies = deposits(primary, size)
    visible = energies.sum()
    ppx.tag(visible, name="visible_energy")
    ppx.tag(torch.tensor(float(len(energies)), dtype=torch.float64), name="active_voxels")
    if observe == "sparse":
        image = sparse_image(coordinates, energies, size)
        ppx.observe(SparseNormal(image, SPARSE_NOISE), image, name="image")
    else:
        image = summary_image(coordinates, energies, size, summary_size)
        ppx.observe(dist.Normal(image, torch.tensor(SUMMARY_NOISE, dtype=torch.float64)), image, name="image")
    return visible


def make_model(size: int = DEFAULT_SIZE, summary_size: int = DEFAULT_SUMMARY_SIZE,
               observe: Observation = DEFAULT_OBSERVATION) -> Callable[[], torch.Tensor]:
    """``model`` with its detector size, summary size and observation fixed, ready for ``ppx.serve``."""
    if observe not in OBSERVATIONS:
        raise ValueError(f"observe must be one of {', '.join(OBSERVATIONS)}, got {observe!r}")

    def lartpc() -> torch.Tensor:
        return model(size, summary_size, observe)

    return lartpc


if __name__ == "__main__":
    from simulators._cli import serve_main

    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--size", type=int, default=DEFAULT_SIZE)
    options.add_argument("--summary-size", type=int, default=DEFAULT_SUMMARY_SIZE)
    options.add_argument("--observe", choices=OBSERVATIONS, default=DEFAULT_OBSERVATION)
    known, remaining = options.parse_known_args()
    serve_main(make_model(known.size, known.summary_size, known.observe),
               description=__doc__.splitlines()[0] + f" Also takes --size (voxels per side, default "
                                                     f"{DEFAULT_SIZE}), --summary-size (default "
                                                     f"{DEFAULT_SUMMARY_SIZE}) and --observe "
                                                     f"{'|'.join(OBSERVATIONS)} (default {DEFAULT_OBSERVATION}).",
               argv=remaining)
