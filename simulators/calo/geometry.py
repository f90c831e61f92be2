"""The CaloGAN calorimeter: three longitudinal layers of Pb/LAr cells, and their flat layout.

Dimensions follow the published CaloGAN geometry (Paganini, de Oliveira and
Nachman, Phys. Rev. D 97, 014021 (2018), and its data set description): a
480 x 480 mm face and three layers of cells, sizes in mm:

    layer  cells (phi x eta)  cell eta x phi  depth
    0      3 x 96             5 x 160         90   (4.3 X0)
    1      12 x 12            40 x 40         347  (16.5 X0)
    2      12 x 6             80 x 40         43   (2.0 X0)

Arrays are indexed ``[phi, eta]`` as in the published HDF5 files (``layer_0``
is 3 x 96). The depths in radiation lengths mirror the ATLAS barrel
accordion's strip, middle and back samplings (4.3, about 16 and about 2 X0).

The absorber is described as one effective Pb/LAr medium; these numbers are
our assumptions, typical of a lead/liquid-argon sampling calorimeter:
radiation length 21 mm (480 mm is 22.9 X0), Moliere radius 35 mm, nuclear
interaction length 400 mm (480 mm is 1.2 lambda, so many pions leak out the
back), effective Z 60 and critical energy 11 MeV. Cells hold the energy seen
by the active liquid argon, a sampling fraction of 0.18 of what electrons and
photons deposit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FACE_MM = 480.0
"""Width of the calorimeter's face in both directions; the particle enters at its centre."""


@dataclass(frozen=True)
class Layer:
    """One longitudinal layer: its cell grid (``[phi, eta]``) and depth range."""

    shape: tuple[int, int]
    front_mm: float
    back_mm: float

    @property
    def cell_eta_mm(self) -> float:
        return FACE_MM / self.shape[1]

    @property
    def cell_phi_mm(self) -> float:
        return FACE_MM / self.shape[0]

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]


LAYERS: tuple[Layer, ...] = (
    Layer((3, 96), 0.0, 90.0),
    Layer((12, 12), 90.0, 437.0),
    Layer((12, 6), 437.0, 480.0),
)
DEPTH_MM = LAYERS[-1].back_mm
NUM_CELLS = sum(layer.size for layer in LAYERS)
"""504 = 3 * 96 + 12 * 12 + 12 * 6: the length of a flattened shower."""
LAYER_OFFSETS = tuple(int(offset) for offset in np.cumsum([0] + [layer.size for layer in LAYERS[:-1]]))

RADIATION_LENGTH_MM = 21.0
MOLIERE_RADIUS_MM = 35.0
INTERACTION_LENGTH_MM = 400.0
EFFECTIVE_Z = 60.0
CRITICAL_ENERGY_GEV = 0.011
SAMPLING_FRACTION = 0.18
"""Active (LAr) share of the energy that electromagnetic showers deposit."""
MIP_VISIBLE_GEV_PER_MM = 1.4e-4
"""What a minimum-ionising particle leaves in the argon: 0.14 MeV/mm, about 67 MeV over the
full depth; its sampling fraction (0.25 of the 0.56 MeV/mm lost in the mixture) exceeds that of
showers, an e/mip ratio of 0.72."""
MIP_LOSS_GEV_PER_MM = 5.6e-4


def flatten_layers(layer0: np.ndarray, layer1: np.ndarray, layer2: np.ndarray) -> np.ndarray:
    """The three layer images as one row of 504 cells, each layer in C order.

    Leading batch dimensions are kept: ``(N, 3, 96), (N, 12, 12), (N, 12, 6) -> (N, 504)``.
    """
    layers = (layer0, layer1, layer2)
    for index, (image, layer) in enumerate(zip(layers, LAYERS)):
        if tuple(image.shape[-2:]) != layer.shape:
            raise ValueError(f"expected layer {index} of shape (..., {layer.shape[0]}, {layer.shape[1]}), "
                             f"got {tuple(image.shape)}")
    batch = layer0.shape[:-2]
    return np.concatenate([np.reshape(image, batch + (-1,)) for image in layers], axis=-1)


def split_layers(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undo ``flatten_layers``: ``(..., 504)`` into the ``(..., 3, 96)``, ``(..., 12, 12)`` and
    ``(..., 12, 6)`` layer images."""
    flat = np.asarray(flat)
    if flat.shape[-1:] != (NUM_CELLS,):
        raise ValueError(f"expected a last dimension of {NUM_CELLS} cells, got shape {flat.shape}")
    batch = flat.shape[:-1]
    return tuple(flat[..., offset:offset + layer.size].reshape(batch + layer.shape)
                 for offset, layer in zip(LAYER_OFFSETS, LAYERS))


_LAYER_FRONTS = np.array([layer.front_mm for layer in LAYERS[1:]])
_CELL_ETA_MM = np.array([layer.cell_eta_mm for layer in LAYERS])
_CELL_PHI_MM = np.array([layer.cell_phi_mm for layer in LAYERS])
_CELLS_ETA = np.array([layer.shape[1] for layer in LAYERS])
_OFFSETS = np.array(LAYER_OFFSETS)


def cell_index(depth_mm: np.ndarray, eta_mm: np.ndarray, phi_mm: np.ndarray) -> np.ndarray:
    """Flat cell index (0..503, ``flatten_layers`` order) of each point, or -1 outside the calorimeter
    (including points at infinite or undefined positions).

    Depth is measured from the front face, the lateral coordinates from the
    centre of the face where the particle enters.
    """
    layer = np.searchsorted(_LAYER_FRONTS, depth_mm, side="right")
    half = FACE_MM / 2.0
    inside = (depth_mm >= 0.0) & (depth_mm < DEPTH_MM) & (np.abs(eta_mm) < half) & (np.abs(phi_mm) < half)
    eta_cell = np.floor((np.where(inside, eta_mm, 0.0) + half) / _CELL_ETA_MM[layer]).astype(np.int64)
    phi_cell = np.floor((np.where(inside, phi_mm, 0.0) + half) / _CELL_PHI_MM[layer]).astype(np.int64)
    index = _OFFSETS[layer] + phi_cell * _CELLS_ETA[layer] + eta_cell
    return np.where(inside, index, -1)
