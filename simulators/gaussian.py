"""Gaussian with unknown mean: the model whose posterior every engine is checked against.

mu ~ Normal(1, sqrt 5); obs0, obs1 ~ Normal(mu, sqrt 2). The posterior is normal,
with precision 1/5 + 2/2 = 1.2 and mean (1/5 + (obs0 + obs1)/2) / 1.2; for
observations 8 and 9 that is mean 7.25 and std sqrt(1/1.2).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch

import ppx

PRIOR_MEAN, PRIOR_STD, NOISE_STD = 1.0, math.sqrt(5.0), math.sqrt(2.0)
# Built once: constructing (and checking) a distribution and its tensors costs more than
# a step-by-step round trip's protocol work.
PRIOR = dist.Normal(torch.tensor(PRIOR_MEAN, dtype=torch.float64), torch.tensor(PRIOR_STD, dtype=torch.float64))
NOISE_SCALE = torch.tensor(NOISE_STD, dtype=torch.float64)


def model() -> torch.Tensor:
    mu = ppx.sample(PRIOR, name="mu")
    likelihood = dist.Normal(mu, NOISE_SCALE)
    ppx.observe(likelihood, name="obs0")
    ppx.observe(likelihood, name="obs1")
    return mu


def posterior(observations: list[float]) -> tuple[float, float]:
    """The exact posterior mean and standard deviation of mu given the observations."""
    precision = 1 / PRIOR_STD ** 2 + len(observations) / NOISE_STD ** 2
    mean = (PRIOR_MEAN / PRIOR_STD ** 2 + sum(observations) / NOISE_STD ** 2) / precision
    return mean, math.sqrt(1 / precision)


if __name__ == "__main__":
    from simulators._cli import serve_main

    serve_main(model, description=__doc__.splitlines()[0])
