"""What the calorimeter reports for a tau decay, and the likelihood the engine weighs it with.

Per visible particle the image is its average response, scaled to the
particle's own deposited energy ``LABEL_deposit`` (a controlled latent, in GeV:
the shower's visible total, log-normal about the average shower's with the spread
the stage's own showers have), plus shape fluctuations. The deposit is the
latent rather than its ratio to the average (the response factor, which has
the same log-normal law about 1), because it is what the image measures: a
charged pion's deposit varies by 75% from shower to shower while the image
fixes it to about a per cent, so as a ratio its posterior would be a thin curved
ridge against the pion's energy, deposit / energy, that a proposal has to hit in
both at once; as the deposit itself it is a narrow peak the image alone places. The likelihood is
independent Normal per voxel around the sum of the scaled averages, with
variance, per particle contribution m, ``a m + (c m)^2`` (``a`` the stochastic
and ``c`` the shape term of its kind, measured on the stage's showers around
their scaled average) plus electronic noise. The reported image, which is what
prior traces and generated events carry, is a real stochastic shower from the
stage, rescaled to the drawn deposit, plus noise: the shower stage is
run for every particle, and is what a surrogate replaces.

That likelihood treats the showers' shape fluctuations as independent per voxel,
where a real shower's are correlated (a shower starting late shifts its whole
profile): measured on six generated events, the neighbouring voxels' residuals
correlate by up to 0.94 along depth. The posterior it gives is then narrower
than the real showers justify, and credible intervals cannot be held to their
nominal coverage of the truth. ``image_source="likelihood"`` draws the reported image
from the likelihood itself instead (without running the shower stage), so that
generated events follow the model exactly: the setting for checking an engine's
calibration.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np
import pyro.distributions as dist
import torch

import ppx
from simulators.calo.spots import landau_fluctuations
from simulators.tau import detector
from simulators.tau.detector import VOXELS, ShowerStage
from simulators.tau.particles import Particle, Response
from simulators.tau.response import MeanResponse

NOISE_GEV = 0.02
"""Electronic noise per voxel, electromagnetic scale."""
STOCHASTIC_GEV = {Response.ELECTROMAGNETIC: 0.001, Response.HADRONIC: 0.025}
SHAPE_SPREAD = {Response.ELECTROMAGNETIC: 0.2, Response.HADRONIC: 0.4, Response.MIP: 0.35}
"""Per-voxel fluctuations around a particle's scaled average image: ``a`` (GeV) and ``c``."""
DEGENERATE_SHOWER = 0.01
"""A stage shower holding less than this fraction of the average is replaced by the average."""
SEED_RANGE = 2.0 ** 32
IMAGE_SOURCES = ("showers", "likelihood")
"""Where the reported image comes from: the shower stage, or the observation likelihood itself."""


def check_image_source(image_source: str) -> None:
    if image_source not in IMAGE_SOURCES:
        raise ValueError(f"image_source must be one of {', '.join(IMAGE_SOURCES)}, got {image_source!r}")


@functools.lru_cache(maxsize=8)
def mean_response(stage: ShowerStage) -> MeanResponse:
    return MeanResponse(stage)


def _float64(value) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.float64)


def _response_factor(label: str, average_deposit: float, spread: float) -> float:
    """The particle's visible total relative to the average, from its deposit (GeV), which is
    log-normal with mean ``average_deposit`` and relative spread ``spread``."""
    sigma = math.sqrt(math.log1p(spread ** 2))
    location = math.log(average_deposit) - sigma ** 2 / 2
    with ppx.scope(label):
        deposit = ppx.sample(dist.LogNormal(_float64(location), _float64(sigma)), name=f"{label}_deposit")
    return float(deposit) / average_deposit


def observe_calorimeter(particles: Sequence[Particle], shower_stage: ShowerStage, image_source: str = "showers"
                        ) -> None:
    """Sample each showering particle's deposit, simulate the image, observe "calorimeter".

    ``image_source`` (one of ``IMAGE_SOURCES``) says what the reported image is made of.
    """
    check_image_source(image_source)
    from_showers = image_source == "showers"
    seed = ppx.sample(dist.Uniform(_float64(0.0), _float64(SEED_RANGE)), name="detector_seed", control=False)
    rng = np.random.default_rng(int(seed))
    expected, variance = np.zeros(VOXELS), np.full(VOXELS, NOISE_GEV ** 2)
    image = NOISE_GEV * rng.standard_normal(VOXELS)
    placed = []
    for particle in particles:
        kind_of_response = particle.species.response
        if kind_of_response in (Response.INVISIBLE, Response.DECAYS):
            continue
        eta, phi = detector.impact_point(particle.momentum)
        factor = None
        if kind_of_response == Response.MIP:
            mean = detector.place_track(eta, phi)
            if from_showers:
                image += detector.place_track(eta, phi, landau_fluctuations(VOXELS[2], rng))
        else:
            kind, energy = particle.species.shower_kind, float(particle.momentum[0])
            average = mean_response(shower_stage)(kind, energy)
            # A stage whose showers deposit nothing (a test's) still gets a deposit site, of a tiny scale.
            average_deposit = max(sum(float(np.sum(layer)) for layer in average.layers), 1e-12)
            factor = _response_factor(particle.label, average_deposit, average.spread)
            mean = factor * detector.place_shower(average.layers, eta, phi, kind, energy)
            if from_showers:
                shower = detector.place_shower(detector.staged_shower(kind, energy, shower_stage, rng), eta, phi,
                                               kind, energy)
                if shower.sum() > DEGENERATE_SHOWER * mean.sum():
                    image += shower * (mean.sum() / shower.sum())
                else:
                    image += mean
        placed.append((particle.label, float(particle.momentum[0]), eta, phi, factor))
        expected += mean
        # The stage's average showers dip slightly below zero in some cells; scaled by a large response
        # factor, a stochastic term linear in them would take the variance below the electronic noise.
        variance += (STOCHASTIC_GEV.get(kind_of_response, 0.0) * np.maximum(mean, 0.0)
                     + (SHAPE_SPREAD[kind_of_response] * mean) ** 2)
    if not (np.isfinite(expected).all() and np.isfinite(variance).all() and (variance > 0).all()):
        raise ValueError("the calorimeter's expected image is not finite and positive for: " + ", ".join(
            f"{label} (E {energy:.4g} GeV, eta {eta:.4g}, phi {phi:.4g}, response factor {factor})"
            for label, energy, eta, phi, factor in placed))
    if not from_showers:
        image = expected + np.sqrt(variance) * rng.standard_normal(VOXELS)
    ppx.observe(dist.Normal(torch.from_numpy(expected), torch.from_numpy(np.sqrt(variance))),
                torch.from_numpy(image), name="calorimeter")
