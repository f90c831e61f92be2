"""Proposals for discrete priors: softmax over categories, and count mixtures with no upper cap."""

from __future__ import annotations

import pyro.distributions as dist
import torch

from inference.ic.proposals.base import ProposalHead


class CategoricalHead(ProposalHead):
    """A softmax over the prior's categories (their number is fixed when the head is made)."""

    def __init__(self, hidden_dim: int, numel: int, components: int) -> None:
        # ``components`` is the number of categories here.
        super().__init__(hidden_dim, numel, components)

    def forward(self, hidden, prior_params):
        (logits,) = self._outputs(hidden)
        return dist.Categorical(logits=logits)


class BernoulliHead(ProposalHead):
    def __init__(self, hidden_dim: int, numel: int, components: int) -> None:
        super().__init__(hidden_dim, numel, 1)

    def forward(self, hidden, prior_params):
        (logits,) = self._outputs(hidden)
        return dist.Bernoulli(logits=logits.squeeze(-1))


class PoissonMixtureHead(ProposalHead):
    """A mixture of Poissons with rates relative to the prior rate: support stays all of N."""

    outputs_per_element = 2

    def forward(self, hidden, prior_params):
        logits, log_ratio = self._outputs(hidden)
        (rate,) = prior_params
        rates = rate.unsqueeze(-1).clamp_min(1e-3) * torch.exp(log_ratio.clamp(-8, 8))
        return dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.Poisson(rates))


class BinomialMixtureHead(ProposalHead):
    """A mixture of Binomials over the prior's own number of trials."""

    outputs_per_element = 2

    def forward(self, hidden, prior_params):
        logits, success_logits = self._outputs(hidden)
        total_count, _ = prior_params
        components = dist.Binomial(total_count.unsqueeze(-1).expand_as(success_logits), logits=success_logits)
        return dist.MixtureSameFamily(dist.Categorical(logits=logits), components)


