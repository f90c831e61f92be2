"""The tau decay modes the simulator generates, with their measured branching fractions.

Branching fractions of the tau- as fitted by the Particle Data Group (Review of
Particle Physics, 2022 edition), in percent:

    channel        mode                               B (%)   generated as
    e nu nu        e- anti-nu_e nu_tau                17.82   3-body, V-A matrix element
    mu nu nu       mu- anti-nu_mu nu_tau              17.39   3-body, V-A matrix element
    pi nu          pi- nu_tau                         10.82   2-body
    K nu           K- nu_tau                           0.696  2-body
    pi pi0 nu      pi- pi0 nu_tau                     25.49   rho(770) nu, rho -> pi- pi0
    pi 2pi0 nu     pi- 2pi0 nu_tau (ex. K0)            9.26   a1(1260) nu, a1 -> 3 pi (phase space)
    3pi nu         pi- pi+ pi- nu_tau (ex. K0, omega)  8.99   a1(1260) nu, a1 -> 3 pi (phase space)
    K pi0 nu       K- pi0 nu_tau                       0.433  K*(892) nu, K* -> K- pi0

These eight modes make up 90.9% of tau decays; the simulator renormalises
them to 1 (``CHANNELS.fractions``). Modes with four or more mesons and those
with neutral kaons are left out. Resonance masses and widths (GeV): rho(770)
0.77526 and 0.1491, a1(1260) 1.230 and 0.420, K*(892)+- 0.89167 and 0.0514.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from simulators.tau.particles import (CHARGED_KAON, CHARGED_PION, ELECTRON, MUON, NEUTRAL_PION, NEUTRINO,
                                      Species)


@dataclass(frozen=True)
class Resonance:
    name: str
    mass: float
    width: float


RHO = Resonance("rho", 0.77526, 0.1491)
A1 = Resonance("a1", 1.230, 0.420)
K_STAR = Resonance("k_star", 0.89167, 0.0514)


@dataclass(frozen=True)
class Channel:
    """One decay mode: the tau's daughters (or, through ``resonance``, the resonance's daughters,
    with a nu_tau recoiling against it), labelled uniquely within the event."""

    name: str
    branching_fraction: float
    daughters: tuple[tuple[str, Species], ...]
    resonance: Optional[Resonance] = None
    v_minus_a: bool = False
    """Weigh the 3-body phase space by the V-A matrix element of leptonic decays."""


@dataclass(frozen=True)
class ChannelTable:
    """The channels in order of their ``channel`` index, with renormalised fractions."""

    channels: tuple[Channel, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(channel.name for channel in self.channels)

    @property
    def branching_fractions(self) -> np.ndarray:
        return np.array([channel.branching_fraction for channel in self.channels])

    @property
    def fractions(self) -> np.ndarray:
        """Branching fractions renormalised over the channels generated: the prior on ``channel``."""
        return self.branching_fractions / self.branching_fractions.sum()

    def __len__(self) -> int:
        return len(self.channels)

    def __getitem__(self, index: int) -> Channel:
        return self.channels[index]


_NU_TAU = ("nu_tau", NEUTRINO)
CHANNELS = ChannelTable((
    Channel("e nu nu", 0.1782, (("electron", ELECTRON), ("anti_nu_e", NEUTRINO), _NU_TAU), v_minus_a=True),
    Channel("mu nu nu", 0.1739, (("muon", MUON), ("anti_nu_mu", NEUTRINO), _NU_TAU), v_minus_a=True),
    Channel("pi nu", 0.1082, (("pi_minus", CHARGED_PION), _NU_TAU)),
    Channel("K nu", 0.00696, (("k_minus", CHARGED_KAON), _NU_TAU)),
    Channel("pi pi0 nu", 0.2549, (("pi_minus", CHARGED_PION), ("pi0", NEUTRAL_PION)), RHO),
    Channel("pi 2pi0 nu", 0.0926,
            (("pi_minus", CHARGED_PION), ("pi0_0", NEUTRAL_PION), ("pi0_1", NEUTRAL_PION)), A1),
    Channel("3pi nu", 0.0899,
            (("pi_minus_0", CHARGED_PION), ("pi_plus", CHARGED_PION), ("pi_minus_1", CHARGED_PION)), A1),
    Channel("K pi0 nu", 0.00433, (("k_minus", CHARGED_KAON), ("pi0", NEUTRAL_PION)), K_STAR),
))
