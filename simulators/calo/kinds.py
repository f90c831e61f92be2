"""Incident particle kinds of the shower stage, numbered as the CaloGAN data sets (eplus, gamma, piplus)."""

from __future__ import annotations

from typing import Union

import numpy as np

KINDS = ("electron", "photon", "pion")
ELECTRON, PHOTON, PION = range(len(KINDS))
_ALIASES = {
    "electron": ELECTRON, "positron": ELECTRON, "eplus": ELECTRON, "e+": ELECTRON, "e-": ELECTRON,
    "photon": PHOTON, "gamma": PHOTON,
    "pion": PION, "charged_pion": PION, "piplus": PION, "pi+": PION, "pi-": PION,
}

Kind = Union[str, int]


def kind_index(kind: Kind) -> int:
    """0, 1 or 2 for an electron, photon or charged pion, given by name or number."""
    if isinstance(kind, str):
        index = _ALIASES.get(kind.lower())
        if index is None:
            raise ValueError(f"expected a particle kind among {sorted(_ALIASES)}, got {kind!r}")
        return index
    index = int(kind)
    if index != kind or not 0 <= index < len(KINDS):
        raise ValueError(f"expected a kind number 0..{len(KINDS) - 1} ({', '.join(KINDS)}), got {kind!r}")
    return index


def kind_indices(kinds: object) -> np.ndarray:
    """``kind_index`` of each element of a sequence or array of kinds."""
    if isinstance(kinds, np.ndarray) and kinds.dtype.kind in "iu":
        if kinds.size and (kinds.min() < 0 or kinds.max() >= len(KINDS)):
            raise ValueError(f"expected kind numbers 0..{len(KINDS) - 1}, got values from "
                             f"{kinds.min()} to {kinds.max()}")
        return kinds.astype(np.int64).ravel()
    return np.array([kind_index(kind) for kind in np.ravel(np.asarray(kinds, dtype=object))], dtype=np.int64)
