"""Proposals for priors on the positive reals (Exponential, Gamma, LogNormal, Weibull):
a normal mixture on log x, centred on the log of the prior mean."""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn

from inference.ic.proposals.base import ProposalHead, positive


class _LogNormalMixture(dist.TorchDistribution):
    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, logits, loc, scale):
        self.log_mixture = dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.Normal(loc, scale))
        super().__init__(self.log_mixture.batch_shape, validate_args=False)

    def sample(self, sample_shape=torch.Size()):
        return torch.exp(self.log_mixture.sample(sample_shape))

    def log_prob(self, value):
        log_value = torch.log(value.clamp_min(1e-30))
        return self.log_mixture.log_prob(log_value) - log_value


CENTRE_WEIGHT_GAIN = 10.0
"""How much faster than the read-out the centre weight moves. Adam steps every parameter
by about its learning rate: at 1e-3 the tau pion deposits' weights fell from 1 only to
0.59-0.85 in a 3,900-step training run, ten times faster to 0.35-0.83."""


class LogNormalMixtureHead(ProposalHead):
    """Components at ``centre_weight`` x log(prior mean) + a read-out shift.

    ``centre_weight`` starts at 1 (proposals relative to the prior) and is learnt per
    element: where the posterior does not move with the prior's location, as a
    calorimeter deposit the image measures whatever energy its prior is centred on,
    the head learns to drop the centre rather than to infer it from earlier values.
    """

    outputs_per_element = 3

    def __init__(self, hidden_dim: int, numel: int, components: int, prior_mean) -> None:
        super().__init__(hidden_dim, numel, components)
        self.prior_mean = prior_mean
        self.centre_drop = nn.Parameter(torch.zeros(numel, 1))

    @property
    def centre_weight(self) -> torch.Tensor:
        return 1.0 - CENTRE_WEIGHT_GAIN * self.centre_drop

    def forward(self, hidden, prior_params):
        logits, shift, spread = self._outputs(hidden)
        centre = torch.log(self.prior_mean(prior_params).clamp_min(1e-30)).unsqueeze(-1)
        return _LogNormalMixture(logits, self.centre_weight.double() * centre + shift, positive(spread))
