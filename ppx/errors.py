"""One exception hierarchy for everything that can go wrong between engine and simulator."""

from __future__ import annotations


class ProtocolError(Exception):
    """A peer sent something that is not valid PPX, or the conversation broke down."""


class ProtocolTimeout(ProtocolError):
    """A peer did not answer within the allowed time (dead, hung or unreachable)."""


class VersionMismatch(ProtocolError):
    """The two peers announced protocol versions that cannot work together."""


class SimulatorError(ProtocolError):
    """The simulator's model raised while running a trace; its message is carried along."""


class AuthenticationFailed(ProtocolError):
    """The security handshake with a peer failed: a CURVE key was refused or did not match,
    or only one of the two ends uses CURVE."""
