"""Proposals for discrete priors: softmax over categories, and count mixtures with no upper cap."""

from __future__ import annotations

import pyro.distributions as dist
import torch

from inference.ic.proposals.base import ProposalHead


_TINY = 1e-30


class CategoricalHead(ProposalHead):
    """A softmax over the prior's categories (their number is fixed when the head is made), its
    logits read out relative to the prior's: zero read-outs propose the prior, so the network
    learns only what the observation changes (a tau's decay channel starts at its branching fractions)."""

    def __init__(self, hidden_dim: int, numel: int, components: int) -> None:
        # ``components`` is the number of categories here.
        super().__init__(hidden_dim, numel, components)

    def forward(self, hidden, prior_params):
        (shift,) = self._outputs(hidden)
        (probs,) = prior_params
        return dist.Categorical(logits=torch.log(probs.clamp_min(_TINY)) + shift)


class BernoulliHead(ProposalHead):
    """Logits relative to the prior's, as for ``CategoricalHead``."""

    def __init__(self, hidden_dim: int, numel: int, components: int) -> None:
        super().__init__(hidden_dim, numel, 1)

    def forward(self, hidden, prior_params):
        (shift,) = self._outputs(hidden)
        (probs,) = prior_params
        probs = probs.clamp(_TINY, 1 - 1e-16)
        return dist.Bernoulli(logits=torch.log(probs) - torch.log1p(-probs) + shift.squeeze(-1))


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


