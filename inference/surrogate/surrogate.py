"""A trained surrogate: load it from a checkpoint and draw showers for given conditions, in batches."""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from inference.surrogate.checkpoint import checkpoint_config, checkpoint_geometry, load_checkpoint, load_weights
from inference.surrogate.conditioning import Conditioning
from inference.surrogate.config import SurrogateConfig
from inference.surrogate.generator import ShowerGenerator
from inference.surrogate.geometry import Geometry
from inference.surrogate.showers_file import ShowerData


class Surrogate:
    """The generator of a trained GAN with its conditioning, ready to sample.

    Args:
        generator: maps (noise, condition, incident energy) to cell energies.
        conditioning: maps (kind, energy) to the condition.
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

    def __init__(self, generator: ShowerGenerator, conditioning: Conditioning, geometry: Geometry,
                 kind_names: Sequence[str], energy_unit: str = "GeV",
                 energy_range: tuple[float, float] = (0.0, float("inf"))) -> None:
        self.generator = generator.eval()
        self.conditioning = conditioning.eval()
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
        generator = ShowerGenerator(geometry, conditioning.dim, config.latent_dim, config.generator_hidden,
                                    config.cell_pattern)
        load_weights(generator, checkpoint["best_generator" if which == "best" else "generator"], "generator", path)
        surrogate = cls(generator, conditioning, geometry, data["kind_names"], data["energy_unit"],
                        tuple(data["energy_range"]))
        surrogate.config = config
        surrogate.epoch = checkpoint["best"]["epoch"] if which == "best" else checkpoint["epoch"]
        return surrogate

    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim

    def sample(self, kinds: Any, energies: Any, *, batch_size: int = 10_000,
               seed: Optional[int] = None) -> np.ndarray:
        """Showers for each (kind, energy): cell energies (N, cells) as float32, in ``energy_unit``.

        Args:
            kinds: (N,) particle kind indices, or one kind for all.
            energies: (N,) positive incident energies, or one energy for all.
            batch_size: showers per generator call.
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
        with torch.inference_mode():
            for start in range(0, count, batch_size):
                stop = min(count, start + batch_size)
                energy = torch.from_numpy(energies_array[start:stop].astype(np.float32))
                condition = self.conditioning(torch.from_numpy(kinds_array[start:stop]), energy)
                z = torch.randn(stop - start, self.latent_dim, generator=noise)
                cell_noise = torch.randn(stop - start, self.geometry.num_cells, generator=noise)
                out[start:stop] = self.generator(z, condition, energy, cell_noise).numpy()
        return out

    def sample_like(self, data: ShowerData, *, batch_size: int = 10_000, seed: Optional[int] = None) -> ShowerData:
        """Generated showers for the kinds and energies of ``data``."""
        showers = self.sample(data.kinds, data.energies, batch_size=batch_size, seed=seed)
        return ShowerData(data.kinds, data.energies, showers, self.geometry, self.kind_names,
                          self.energy_unit, "surrogate")
