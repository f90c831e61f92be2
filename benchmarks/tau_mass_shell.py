"""Where a hadronic tau's momentum can lie once its visible products are known: the neutrino's mass shell.

With one neutrino (every hadronic channel), the tau momentum P and the visible
four-momentum p_vis leave the neutrino P - p_vis, which must be massless: one
equation on P. Given p_vis (which the calorimeter pins to a fraction of a voxel
and about a per cent in energy) the momentum posterior therefore lies near a
curved two-dimensional sheet in (px, py, pz), spread along it by the missing
transverse momentum's resolution, and the sheet can cross a line of fixed
direction twice. Leptonic channels, with two neutrinos, leave P free of any such
equation. For each held-out event of ``benchmarks.tau_inference`` (same seeds) this
prints the px at which the sheet crosses the line through the true py and pz
within the prior's range, the true px among them.

    python -m benchmarks.tau_mass_shell [--events 8]
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.tau_inference import FIRST_EVENT_SEED
from simulators import tau_decay
from simulators.tau.particles import TAU_MASS

GRID = 400_001


def neutrino_mass_squared(px: np.ndarray, py: float, pz: float, visible: np.ndarray) -> np.ndarray:
    """(P - p_vis)^2 for a tau of momentum (px, py, pz) on its mass shell."""
    energy = np.sqrt(TAU_MASS ** 2 + px ** 2 + py ** 2 + pz ** 2)
    return ((energy - visible[0]) ** 2 - (px - visible[1]) ** 2
            - (py - visible[2]) ** 2 - (pz - visible[3]) ** 2)


def crossings(py: float, pz: float, visible: np.ndarray) -> np.ndarray:
    """The px in the prior's range where the neutrino would be massless, by sign changes on a fine grid."""
    px = np.linspace(*tau_decay.MOMENTUM_PRIOR["px"], GRID)
    mass_squared = neutrino_mass_squared(px, py, pz, visible)
    changes = np.nonzero(np.sign(mass_squared[:-1]) != np.sign(mass_squared[1:]))[0]
    return (px[changes] + px[changes + 1]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=8)
    args = parser.parse_args()
    for index in range(args.events):
        truth, _ = tau_decay.generate_event(FIRST_EVENT_SEED + index, image_source="likelihood")
        visible = np.asarray(truth["visible_momentum"], dtype=np.float64)
        roots = crossings(truth["py"], truth["pz"], visible)
        leptonic = tau_decay.CHANNELS[truth["channel"]].v_minus_a  # e nu nu, mu nu nu: two neutrinos
        described = "none: two neutrinos" if leptonic else ", ".join(f"{root:.2f}" for root in roots)
        print(f"event {index} ({truth['channel_name']}): true px {truth['px']:.2f}, visible E {visible[0]:.1f} GeV; "
              f"the sheet at the true py, pz: px = {described}")


if __name__ == "__main__":
    main()
