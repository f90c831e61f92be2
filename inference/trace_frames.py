"""Traces as PPX ``TraceBatch`` frames: how training ranks share traces without pickling them.

A frame is decoded by the bounds-checked codec and validated like any batch a
simulator sends, so a rank reading one runs no code it did not bring itself.
Only what training reads travels: each choice's kind, address, name, wire
distribution, value and control flag, and the model's result.
"""

from __future__ import annotations

from typing import Sequence

from inference.trace import Trace
from ppx import batch, codec
from ppx import messages as m
from ppx.errors import ProtocolError


def encode_traces(traces: Sequence[Trace]) -> bytes:
    records = [[batch.Record(choice.kind, choice.address, choice.name, choice.wire, choice.value, choice.control)
                for choice in trace] for trace in traces]
    return codec.encode(batch.pack(records, [trace.result for trace in traces]))


def decode_traces(frame: bytes) -> list[Trace]:
    message = codec.decode(frame)
    if not isinstance(message, m.TraceBatch):
        raise ProtocolError(f"expected a TraceBatch frame of traces, got {type(message).__name__}")
    batch.validate(message)
    return [Trace.from_records(records, result) for records, result in batch.unpack(message)]
