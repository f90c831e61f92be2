"""A head's proposal mixed with the prior, in the proportion that fits held-out traces best.

Where a head has not (yet) learnt more than the prior knows, as a briefly trained
network's calorimeter deposits or a photon's 2%-wide deposit even after
thousands of steps, its proposal is wider or worse placed than the prior, and
importance sampling would be better off without it. Mixing each element with
its prior, ``w p + (1 - w) q``, with ``w`` fitted by expectation-maximisation
on the validation traces (``fit_prior_weight``), keeps the head where it helps
and falls back to the prior where it does not. The weight is fitted, not
trained: training's gradients reach the head as if there were no mixture,
so the head keeps learning at sites the prior currently serves better.
"""

from __future__ import annotations

import numpy as np
import torch

from ppx.distributions import BY_NAME

EM_ITERATIONS = 100


def prior_distribution(kind: str, params: tuple[torch.Tensor, ...]) -> torch.distributions.Distribution:
    """The prior of PPX kind ``kind`` with (B, numel) parameters (Categorical: (B, numel, C))."""
    return BY_NAME[kind].pyro_class(*params, validate_args=False)


class PriorMixture(torch.distributions.Distribution):
    """Per element, ``weight`` x prior + (1 - weight) x proposal; values and log densities (B, numel).

    ``log_prob`` passes gradients to the proposal's parameters as the proposal's own
    ``log_prob`` would, and has the mixture's value.
    """

    arg_constraints: dict = {}

    def __init__(self, proposal: torch.distributions.Distribution, prior: torch.distributions.Distribution,
                 weight: torch.Tensor) -> None:
        self.proposal, self.prior = proposal, prior
        self.weight = weight.to(torch.float64)
        super().__init__(validate_args=False)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        proposed = self.proposal.sample(sample_shape)
        from_prior = torch.rand(proposed.shape, dtype=torch.float64, device=proposed.device) < self.weight
        return torch.where(from_prior, self.prior.sample(sample_shape).to(proposed.dtype), proposed)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        own = self.proposal.log_prob(value)
        prior = self.prior.log_prob(value).to(own.dtype).reshape(own.shape)
        fixed = own.detach()
        mixed = torch.logaddexp(torch.log(self.weight) + prior, torch.log1p(-self.weight) + fixed)
        return own + (mixed - fixed)


def fit_prior_weight(proposal_log_prob: np.ndarray, prior_log_prob: np.ndarray) -> np.ndarray:
    """Per element (columns), the ``w`` in [0, 1] that maximises the mean of log(w p + (1 - w) q)
    over the rows (sites); the objective is concave in ``w``, and EM climbs it monotonically."""
    weight = np.full(proposal_log_prob.shape[1], 0.5)
    with np.errstate(divide="ignore"):
        for _ in range(EM_ITERATIONS):
            from_prior = np.log(weight) + prior_log_prob
            mixed = np.logaddexp(from_prior, np.log1p(-weight) + proposal_log_prob)
            weight = np.exp(from_prior - mixed).mean(axis=0)
    return weight
