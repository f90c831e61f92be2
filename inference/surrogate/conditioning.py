"""Turn (particle kind, incident energy) into the condition vector both networks read."""

from __future__ import annotations

import torch
from torch import nn


class Conditioning(nn.Module):
    """One-hot particle kind followed by the standardised log incident energy.

    The log-energy mean and spread are buffers, so they travel in the state dict.

    Args:
        num_kinds: how many particle kinds there are.
        log_energy_mean: mean of log(incident energy) over the training showers.
        log_energy_std: its standard deviation.
    """

    def __init__(self, num_kinds: int, log_energy_mean: float = 0.0, log_energy_std: float = 1.0) -> None:
        super().__init__()
        if num_kinds < 1:
            raise ValueError(f"num_kinds must be at least 1, got {num_kinds}")
        if not log_energy_std > 0:
            raise ValueError(f"log_energy_std must be positive, got {log_energy_std}")
        self.num_kinds = num_kinds
        self.register_buffer("log_energy_mean", torch.tensor(float(log_energy_mean)))
        self.register_buffer("log_energy_std", torch.tensor(float(log_energy_std)))

    @property
    def dim(self) -> int:
        return self.num_kinds + 1

    def forward(self, kinds: torch.Tensor, energies: torch.Tensor) -> torch.Tensor:
        """(N,) integer kinds and (N,) positive energies -> (N, num_kinds + 1)."""
        one_hot = nn.functional.one_hot(kinds.long(), self.num_kinds).to(energies.dtype)
        energy = (torch.log(energies) - self.log_energy_mean) / self.log_energy_std
        return torch.cat([one_hot, energy.unsqueeze(1)], dim=1)
