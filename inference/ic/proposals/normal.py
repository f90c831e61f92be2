"""Proposals for Normal priors: a mixture of normals placed relative to the prior."""

from __future__ import annotations

import pyro.distributions as dist

from inference.ic.proposals.base import ProposalHead, positive


class NormalMixtureHead(ProposalHead):
    """Component means are ``prior mean + prior std * m`` and stds ``prior std * s``, so the
    network works in units of the prior whatever the simulator's scale."""

    outputs_per_element = 3

    def forward(self, hidden, prior_params):
        logits, shift, spread = self._outputs(hidden)
        loc, scale = (p.unsqueeze(-1) for p in prior_params)
        components = dist.Normal(loc + scale * shift, scale * positive(spread))
        return dist.MixtureSameFamily(dist.Categorical(logits=logits), components)
