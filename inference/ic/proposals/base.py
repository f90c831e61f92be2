"""What every proposal head shares: a linear read-out of the LSTM state, shaped per element."""

from __future__ import annotations

import torch
from torch import nn


class ProposalHead(nn.Module):
    """Maps LSTM outputs (B, hidden) to a proposal distribution over one address's values.

    A head is created for one address when it is first seen, knowing the number
    of elements of its values (``numel``). ``forward(hidden, prior_params)``
    returns a distribution whose ``log_prob(values)`` is (B, numel) and whose
    ``sample()`` is (B, numel); ``prior_params`` are the prior's parameters for
    each of the B traces, each of shape (B, numel) (broadcast beforehand). The
    network mixes that distribution with the prior by the head's ``prior_weight``.
    """

    outputs_per_element: int = 1

    def __init__(self, hidden_dim: int, numel: int, components: int) -> None:
        super().__init__()
        self.numel = numel
        self.components = components
        self.read_out = nn.Linear(hidden_dim, numel * components * self.outputs_per_element)
        # Per element, the prior's share of the proposal (``inference.ic.proposals.prior_mixture``):
        # fitted on validation traces, not trained; 0 until the first fit.
        self.register_buffer("prior_weight", torch.zeros(numel, dtype=torch.float64))

    def _outputs(self, hidden: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The read-out split into ``outputs_per_element`` tensors of shape (B, numel, components)."""
        raw = self.read_out(hidden).view(hidden.shape[0], self.numel, self.components, self.outputs_per_element)
        # Proposals are evaluated in float64 so that sampled values sit strictly inside
        # the prior's support and importance weights keep their precision.
        return raw.double().unbind(-1)

    def forward(self, hidden: torch.Tensor, prior_params: tuple[torch.Tensor, ...]) -> torch.distributions.Distribution:
        raise NotImplementedError


def positive(raw: torch.Tensor, floor: float = 1e-3) -> torch.Tensor:
    return nn.functional.softplus(raw) + floor
