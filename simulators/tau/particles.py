"""The particles of tau decays: masses (GeV, PDG) and how the calorimeter sees each."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

TAU_MASS = 1.77686


class Response(Enum):
    """What a particle leaves in the calorimeter."""

    ELECTROMAGNETIC = "electromagnetic shower"
    HADRONIC = "hadronic shower"
    MIP = "ionisation track"
    INVISIBLE = "nothing"
    DECAYS = "its decay products' deposits"


@dataclass(frozen=True)
class Species:
    name: str
    mass: float
    response: Response
    shower_kind: str = ""
    """The shower stage's particle kind for showering species."""


ELECTRON = Species("electron", 0.000510999, Response.ELECTROMAGNETIC, "electron")
PHOTON = Species("photon", 0.0, Response.ELECTROMAGNETIC, "photon")
MUON = Species("muon", 0.1056584, Response.MIP)
CHARGED_PION = Species("charged pion", 0.13957039, Response.HADRONIC, "pion")
CHARGED_KAON = Species("charged kaon", 0.493677, Response.HADRONIC, "pion")
"""The shower stage knows no kaons; a kaon showers like a charged pion of the same energy."""
NEUTRAL_PION = Species("neutral pion", 0.1349768, Response.DECAYS)
NEUTRINO = Species("neutrino", 0.0, Response.INVISIBLE)


@dataclass
class Particle:
    """A final-state particle: a unique label within the event, its species and lab four-momentum
    ``(E, px, py, pz)`` in GeV."""

    label: str
    species: Species
    momentum: np.ndarray

    @property
    def visible(self) -> bool:
        return self.species.response not in (Response.INVISIBLE, Response.DECAYS)
