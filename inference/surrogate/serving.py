"""A trained shower surrogate standing in for a simulator's "shower" stage over PPX.

The tau-decay simulator offers each particle's shower as the stage ``shower``
with inputs (kind index, energy in GeV) and expects the three CaloGAN layers
back. ``ShowerStage(surrogate)`` is that mapping, for ``RemoteSimulator``,
``SimulatorPool`` or ``LocalSimulator`` ``stages={"shower": ...}``.
"""

from __future__ import annotations

import numpy as np

from inference.surrogate.surrogate import Surrogate
from simulators.calorimeter import split_layers

_GEV = {"GeV": 1.0, "MeV": 1e3, "keV": 1e6}


class ShowerStage:
    """Calls a surrogate for one shower at a time, converting units to and from GeV."""

    def __init__(self, surrogate: Surrogate) -> None:
        if surrogate.energy_unit not in _GEV:
            raise ValueError(f"surrogate energies are in {surrogate.energy_unit!r}; expected one of "
                             f"{', '.join(_GEV)}")
        self.surrogate = surrogate
        self.per_gev = _GEV[surrogate.energy_unit]

    @classmethod
    def load(cls, path: str) -> "ShowerStage":
        return cls(Surrogate.load(path))

    def __call__(self, inputs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        kind, energy = (float(np.ravel(x)[0]) for x in inputs)
        cells = self.surrogate.sample(np.array([int(kind)]), np.array([energy * self.per_gev]))[0]
        return tuple(np.asarray(layer, dtype=np.float64) / self.per_gev for layer in split_layers(cells))
