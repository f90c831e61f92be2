"""The calorimeter's average response to a particle, measured on the shower stage itself.

A likelihood whose mean is one stochastic shower is useless for inference:
each trace's weight would hinge on how well its own shower's fluctuations
happen to match the data's, thousands of nats apart at the same latents.
``MeanResponse`` instead averages the stage's showers at a ladder of energies
(doubling from ``LADDER[0]``), per GeV, and records how much their visible
totals spread. Each rung is simulated once, lazily, with a fixed seed, so every
simulator process builds the same templates. Between rungs it interpolates
linearly in log energy, in which shower shapes change slowly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

Layers = tuple[np.ndarray, np.ndarray, np.ndarray]
ShowerStage = Callable[[str, float, np.random.Generator], Layers]

LADDER = tuple(0.25 * 2.0 ** step for step in range(10))
"""Energies (GeV) at which showers are averaged: 0.25 to 128 GeV."""
SHOWERS_PER_RUNG = 48
SHOWERS_PER_HIGH_RUNG = 16
"""Above ``HIGH_RUNG_GEV`` showers fluctuate less relative to their size and cost more to simulate."""
HIGH_RUNG_GEV = 10.0
MIN_SPREAD = 0.01
SEED = 20261126


@dataclass(frozen=True)
class Response:
    """A particle's average visible cell energies (GeV) and the relative spread of their total."""

    layers: Layers
    spread: float


class MeanResponse:
    """The average response of ``stage`` to any kind and energy, built rung by rung as needed."""

    def __init__(self, stage: ShowerStage) -> None:
        self.stage = stage
        self._rungs: dict[tuple[str, int], Response] = {}

    def _rung(self, kind: str, index: int) -> Response:
        """The average shower per GeV at ``LADDER[index]``."""
        key = (kind, index)
        if key not in self._rungs:
            energy = LADDER[index]
            count = SHOWERS_PER_RUNG if energy <= HIGH_RUNG_GEV else SHOWERS_PER_HIGH_RUNG
            rng = np.random.default_rng([SEED, index, sum(map(ord, kind))])
            showers = [self.stage(kind, energy, rng) for _ in range(count)]
            totals = np.array([sum(float(np.sum(layer)) for layer in shower) for shower in showers])
            spread = float(np.std(totals) / np.mean(totals)) if np.mean(totals) > 0 else 0.0
            layers = tuple(np.mean([shower[layer] for shower in showers], axis=0) / energy for layer in range(3))
            self._rungs[key] = Response(layers, max(spread, MIN_SPREAD))
        return self._rungs[key]

    def __call__(self, kind: str, energy: float) -> Response:
        """The average response to a ``kind`` particle of ``energy`` GeV."""
        position = math.log2(max(energy, LADDER[0]) / LADDER[0])
        lower = min(int(position), len(LADDER) - 2)
        weight = min(position - lower, 1.0)
        below, above = self._rung(kind, lower), self._rung(kind, lower + 1)
        layers = tuple(energy * ((1.0 - weight) * low + weight * high)
                       for low, high in zip(below.layers, above.layers))
        return Response(layers, (1.0 - weight) * below.spread + weight * above.spread)
