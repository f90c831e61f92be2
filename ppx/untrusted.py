"""Everything the engine does with a frame from an untrusted peer before it trusts the message.

A bad frame or a bad distribution ends as one ``ProtocolError`` that says what
was wrong. The fuzzers (``tests/ppx/test_codec_fuzz.py``,
``benchmarks/fuzz_decoder.py``) drive ``decode_and_check``, so that what they
cover is what the engine runs.
"""

from __future__ import annotations

import torch

from ppx import batch, codec
from ppx import messages as m
from ppx.distributions import from_wire
from ppx.errors import ProtocolError


def invalid_distribution(message: m.Sample | m.Observe, err: ValueError) -> ProtocolError:
    """The error for a Sample's or Observe's bad distribution, naming its address and name."""
    return ProtocolError(f"{type(message).__name__} at address {message.address!r} (name {message.name!r}): {err}")


def distribution_of(message: m.Sample | m.Observe) -> torch.distributions.Distribution:
    """The distribution a Sample or Observe carries.

    Raises:
        ProtocolError: its parameters are outside their support, naming the message's address and name.
    """
    try:
        return from_wire(message.distribution.type_id, message.distribution.params)
    except ValueError as err:
        raise invalid_distribution(message, err) from None


def decode_and_check(frame: bytes) -> m.Message:
    """Decode ``frame``; unpack a TraceBatch and check its parameters; build a Sample's or Observe's distribution.

    Raises:
        ProtocolError: the frame is malformed, a batch is inconsistent, or a parameter is out of support.
    """
    message = codec.decode(frame)
    if isinstance(message, m.TraceBatch):
        batch.unpack(message)
        batch.check_finite_params(message)
    elif isinstance(message, (m.Sample, m.Observe)):
        distribution_of(message)
    return message
