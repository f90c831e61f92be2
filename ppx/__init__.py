"""PPX: instrument a simulator's random choices and serve them to an inference engine.

    import ppx
    import pyro.distributions as dist

    def model():
        mu = ppx.sample(dist.Normal(1.0, 5 ** 0.5), name="mu")
        ppx.observe(dist.Normal(mu, 2 ** 0.5), name="obs0")
        return mu

    ppx.serve(model, "ipc:///tmp/gaussian.sock")
"""

from ppx.errors import AuthenticationFailed, ProtocolError, ProtocolTimeout, SimulatorError, VersionMismatch
from ppx.messages import PROTOCOL_VERSION
from ppx.runtime import Handler, observe, sample, scope, stage, tag
from ppx.simulator import serve

__all__ = [
    "AuthenticationFailed", "Handler", "PROTOCOL_VERSION", "ProtocolError", "ProtocolTimeout", "SimulatorError",
    "VersionMismatch", "observe", "sample", "scope", "serve", "stage", "tag",
]
