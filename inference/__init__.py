"""The inference engine: simulators (remote, pooled, in-process), inference algorithms and posteriors."""

from inference.importance import importance_sampling
from inference.local import LocalSimulator
from inference.mcmc import metropolis_hastings
from inference.pool import SimulatorPool
from inference.posterior import Posterior
from inference.remote import RemoteSimulator
from inference.trace import Choice, Trace

__all__ = [
    "Choice", "LocalSimulator", "Posterior", "RemoteSimulator", "SimulatorPool", "Trace",
    "importance_sampling", "metropolis_hastings",
]
