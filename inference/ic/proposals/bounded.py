"""Proposals for Uniform and Beta priors: a mixture of Betas scaled onto the prior's interval."""

from __future__ import annotations

import pyro.distributions as dist
import torch

from inference.ic.proposals.base import ProposalHead, positive

_EDGE = 1e-6


class _ScaledBetaMixture(dist.TorchDistribution):
    """A Beta mixture on (0, 1) mapped affinely onto (low, high)."""

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, logits, alpha, beta, low, high):
        self.mixture = dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.Beta(alpha, beta))
        self.low, self.width = low, high - low
        super().__init__(self.mixture.batch_shape, validate_args=False)

    def sample(self, sample_shape=torch.Size()):
        return self.low + self.width * self.mixture.sample(sample_shape)

    def log_prob(self, value):
        unit = ((value - self.low) / self.width).clamp(_EDGE, 1 - _EDGE)
        return self.mixture.log_prob(unit) - torch.log(self.width)


class UniformBetaMixtureHead(ProposalHead):
    outputs_per_element = 3

    def forward(self, hidden, prior_params):
        logits, alpha, beta = self._outputs(hidden)
        low, high = prior_params
        return _ScaledBetaMixture(logits, positive(alpha), positive(beta), low, high)


class BetaMixtureHead(ProposalHead):
    outputs_per_element = 3

    def forward(self, hidden, prior_params):
        logits, alpha, beta = self._outputs(hidden)
        zeros = torch.zeros_like(prior_params[0])
        return _ScaledBetaMixture(logits, positive(alpha), positive(beta), zeros, zeros + 1)


