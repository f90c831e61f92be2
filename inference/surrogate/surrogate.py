"""A trained surrogate: load it from a checkpoint and draw showers for given conditions, in batches."""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from inference.surrogate.checkpoint import checkpoint_config, checkpoint_geometry, load_checkpoint, load_weights
from inference.surrogate.conditioning import Conditioning
from inference.surrogate.config import SurrogateConfig
from inference.surrogate.geometry import Geometry
from inference.surrogate.response import ResponseModel
from inference.surrogate.sampler import ShowerSampler
from inference.surrogate.showers_file import ShowerData

SAMPLE_BATCH = 2048
"""Showers per generator call: on one core 2,048 were 1.7 times as fast per shower as 10,000."""


class Surrogate:
    """The response model and generator of a trained GAN with their conditioning, ready to sample.

    Args:
        sampler: maps (kind, incident energy) to cell energies.
        geometry: the calorimeter layout of the output.
        kind_names: the name of each particle kind.
        energy_unit: unit of incident and cell energies.
        energy_range: (lowest, highest) incident energy seen in training; sampling
            outside it extrapolates.

    Example:
        >>> surrogate = Surrogate.load("surrogate.pt")                  # doctest: +SKIP
        >>> showers = surrogate.sample([0, 2], [10.0, 50.0])            # doctest: +SKIP
        >>> showers.shape                                               # doctest: +SKIP
        (2, 504)
    """

    def __init__(self, sampler: ShowerSampler, geometry: Geometry, kind_names: Sequence[str],
                 energy_unit: str = "GeV", energy_range: tuple[float, float] = (0.0, float("inf"))) -> None:
        if sampler.response.num_kinds != len(kind_names):
            raise ValueError(f"the sampler knows {sampler.response.num_kinds} particle kinds, but "
                             f"{len(kind_names)} kind names were given: {tuple(kind_names)}")
        self.sampler = sampler.eval()
        self.geometry = geometry
        self.kind_names = tuple(kind_names)
        self.energy_unit = energy_unit
        self.energy_range = (float(energy_range[0]), float(energy_range[1]))
        self.config: Optional[SurrogateConfig] = None
        self.epoch: Optional[int] = None

    @classmethod
    def load(cls, path: Union[str, os.PathLike], *, which: str = "best") -> "Surrogate":
        """The surrogate in a checkpoint written by ``train_surrogate``.

        Args:
            path: the checkpoint.
            which: ``"best"`` for the generator with the lowest KS distance on
                held-out showers, ``"latest"`` for the last epoch's.

        Raises:
            ValueError: not a surrogate checkpoint, or ``which`` unknown.
        """
        if which not in ("best", "latest"):
            raise ValueError(f"which must be 'best' or 'latest', got {which!r}")
        path = os.fspath(path)
        checkpoint = load_checkpoint(path)
        config, geometry, data = checkpoint_config(checkpoint), checkpoint_geometry(checkpoint), checkpoint["data"]
        conditioning = Conditioning(len(data["kind_names"]))
        load_weights(conditioning, checkpoint["conditioning"], "conditioning", path)
        response = ResponseModel.from_state(checkpoint["response"])
        sampler = ShowerSampler.from_config(config, geometry, conditioning, response)
        load_weights(sampler.generator, checkpoint["best_generator" if which == "best" else "generator"],
                     "generator", path)
        surrogate = cls(sampler, geometry, data["kind_names"], data["energy_unit"], tuple(data["energy_range"]))
        surrogate.config = config
        surrogate.epoch = checkpoint["best"]["epoch"] if which == "best" else checkpoint["epoch"]
        return surrogate

    def sample(self, kinds: Any, energies: Any, *, batch_size: int = SAMPLE_BATCH,
               seed: Optional[int] = None) -> np.ndarray:
        """Showers for each (kind, energy): cell energies (N, cells) as float32, in ``energy_unit``.

        Args:
            kinds: (N,) particle kind indices, or one kind for all.
            energies: (N,) positive incident energies, or one energy for all.
            batch_size: showers per generator call (the default keeps a call's
                tensors in the CPU caches; larger is slower per shower on one core).
            seed: seed of the noise (None: torch's global generator).

        Raises:
            ValueError: kinds out of range, energies not positive, or lengths that differ.
        """
        kinds_array = np.asarray(kinds).reshape(-1)
        energies_array = np.asarray(energies, dtype=np.float64).reshape(-1)
        count = max(len(kinds_array), len(energies_array))
        if len(kinds_array) == 1:
            kinds_array = np.repeat(kinds_array, count)
        if len(energies_array) == 1:
            energies_array = np.repeat(energies_array, count)
        if len(kinds_array) != len(energies_array):
            raise ValueError(f"expected as many kinds as energies, got {len(kinds_array)} and {len(energies_array)}")
        if count and not np.issubdtype(kinds_array.dtype, np.integer):
            raise ValueError(f"kinds must be integer indices into {self.kind_names}, got {kinds_array.dtype}")
        if count and (kinds_array.min() < 0 or kinds_array.max() >= len(self.kind_names)):
            raise ValueError(f"kinds must lie in 0..{len(self.kind_names) - 1} ({', '.join(self.kind_names)}), "
                             f"got {kinds_array.min()}..{kinds_array.max()}")
        if count and not np.all(energies_array > 0):
            raise ValueError("incident energies must be positive")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        noise = torch.Generator().manual_seed(seed) if seed is not None else None
        out = np.empty((count, self.geometry.num_cells), dtype=np.float32)
        kinds_tensor = torch.from_numpy(kinds_array.astype(np.int64, copy=False))
        energies_tensor = torch.from_numpy(energies_array.astype(np.float32))
        with torch.inference_mode():
            for start in range(0, count, batch_size):
                stop = min(count, start + batch_size)
                out[start:stop] = self.sampler(kinds_tensor[start:stop], energies_tensor[start:stop], noise).numpy()
        return out

    def sample_like(self, data: ShowerData, *, batch_size: int = SAMPLE_BATCH,
                    seed: Optional[int] = None) -> ShowerData:
        """Generated showers for the kinds and energies of ``data``."""
        showers = self.sample(data.kinds, data.energies, batch_size=batch_size, seed=seed)
        return ShowerData(data.kinds, data.energies, showers, self.geometry, self.kind_names,
                          self.energy_unit, "surrogate")
