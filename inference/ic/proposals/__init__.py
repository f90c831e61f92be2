"""Proposal heads, one family per kind of prior, chosen by the PPX distribution name."""

from __future__ import annotations


import torch

from inference.ic.proposals.base import ProposalHead
from inference.ic.proposals.bounded import BetaMixtureHead, UniformBetaMixtureHead
from inference.ic.proposals.discrete import (BernoulliHead, BinomialMixtureHead, CategoricalHead,
                                             PoissonMixtureHead)
from inference.ic.proposals.normal import NormalMixtureHead
from inference.ic.proposals.positive import LogNormalMixtureHead

_PRIOR_MEANS = {
    "Exponential": lambda p: 1 / p[0],
    "Gamma": lambda p: p[0] / p[1],
    "LogNormal": lambda p: torch.exp(p[0] + p[1] ** 2 / 2),
    "Weibull": lambda p: p[0] * torch.exp(torch.lgamma(1 + 1 / p[1])),
}


def make_head(kind: str, hidden_dim: int, numel: int, components: int, categories: int = 0) -> ProposalHead:
    """The proposal head for an address whose prior is of PPX kind ``kind``.

    ``categories`` is the number of categories for Categorical priors.
    """
    if kind == "Normal":
        return NormalMixtureHead(hidden_dim, numel, components)
    if kind == "Uniform":
        return UniformBetaMixtureHead(hidden_dim, numel, components)
    if kind == "Beta":
        return BetaMixtureHead(hidden_dim, numel, components)
    if kind == "Categorical":
        return CategoricalHead(hidden_dim, numel, categories)
    if kind == "Bernoulli":
        return BernoulliHead(hidden_dim, numel, 1)
    if kind == "Poisson":
        return PoissonMixtureHead(hidden_dim, numel, components)
    if kind == "Binomial":
        return BinomialMixtureHead(hidden_dim, numel, components)
    if kind in _PRIOR_MEANS:
        return LogNormalMixtureHead(hidden_dim, numel, components, _PRIOR_MEANS[kind])
    raise ValueError(f"no proposal head for distribution kind {kind!r}")


__all__ = ["ProposalHead", "make_head"]
