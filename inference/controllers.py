"""Controllers decide the value of each random choice the engine controls.

A remote simulator asks for every ``sample``; the engine answers with the value
a controller picks: from the prior, replayed from an earlier trace (MCMC), or
from a learned proposal (inference compilation). ``control=False`` choices are
always drawn from the prior, whatever the controller.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from inference.trace import Trace
from ppx.distributions import as_float64_array


def draw_from_prior(distribution: torch.distributions.Distribution) -> np.ndarray:
    with torch.no_grad():
        return as_float64_array(distribution.sample())


class Controller:
    """Chooses the values of controlled samples. The default draws from the prior.

    A controller with ``batched = True`` is asked through ``choose_batch`` of its
    module by executors that can gather requests from many traces at once.
    """

    batched = False

    def controller(self) -> "Controller":
        """The controller for one more trace; a stateless controller serves every trace itself."""
        return self

    def choose(
        self, trace: Trace, key: str, name: str, distribution: torch.distributions.Distribution
    ) -> tuple[np.ndarray, Optional[float]]:
        """The value for the sample with ``key`` and the proposal's log density at it
        (None when it came from the prior)."""
        return draw_from_prior(distribution), None


PRIOR = Controller()


class Replay(Controller):
    """Re-runs a trace for Metropolis-Hastings.

    The site ``target`` takes ``proposed``; every other controlled sample whose
    key was in ``previous`` reuses its value when it is still in the support, and
    the rest are drawn fresh from the prior. ``reused`` and ``fresh`` record which
    happened, for the acceptance ratio. Without a ``target`` every value comes from
    ``previous``, for a step that moved several sites at once.
    """

    def __init__(self, previous: dict[str, np.ndarray], target: Optional[str] = None,
                 proposed: Optional[np.ndarray] = None) -> None:
        self.previous = previous
        self.target = target
        self.proposed = proposed
        self.reused: set[str] = set()
        self.fresh: set[str] = set()

    def choose(self, trace, key, name, distribution):
        if self.target is not None and key == self.target:
            return self.proposed, None
        old = self.previous.get(key)
        if old is not None:
            value = torch.as_tensor(old)
            if value.shape == distribution.shape() and bool(distribution.support.check(value).all()):
                self.reused.add(key)
                return old, None
        self.fresh.add(key)
        return draw_from_prior(distribution), None
