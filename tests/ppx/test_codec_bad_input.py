"""ppx.codec on frames that claim absurd sizes or unknown types: a ProtocolError naming the field.

A frame cannot carry more tensor data than its own bytes, but its shapes and
lengths are numbers a peer chooses; none of them may make the decoder allocate
beyond ``ppx.limits.MAX_TENSOR_ELEMENTS`` or fail with anything but ``ProtocolError``.
"""

from __future__ import annotations

import re
import struct

import numpy as np
import pytest

from ppx import codec
from ppx import messages as m
from ppx.errors import ProtocolError
from ppx.flatbuf import Writer

TAG = m.MESSAGE_TYPES.index(m.Tag) + 1


def tag_frame(data: np.ndarray, shape: list[int]) -> bytes:
    """A Tag whose value tensor has ``data`` and, independently of it, ``shape``."""
    def tensor(writer: Writer, _: None) -> int:
        return writer.table(children=(
            (0, lambda w, d: w.raw_vector(d.tobytes(), d.size, 8), data),
            (1, lambda w, s: w.raw_vector(struct.pack(f"<{len(s)}i", *s), len(s), 4), shape),
        ))

    def body(writer: Writer, _: None) -> int:
        return writer.table(children=((0, Writer.string, "[forward()+0x10]"), (1, Writer.string, "energy"),
                                      (2, tensor, None)))

    writer = Writer()
    return writer.finish(writer.table(children=((1, body, None),), octets=((0, TAG),)))


def test_hand_built_tag_decodes() -> None:
    decoded = codec.decode(tag_frame(np.arange(6.0), [2, 3]))
    np.testing.assert_array_equal(decoded.value, np.arange(6.0).reshape(2, 3))


def test_tensor_above_the_element_cap_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ppx.limits.MAX_TENSOR_ELEMENTS", 10)
    codec.decode(codec.encode(m.Tag("a", "n", np.zeros((2, 5)))))
    with pytest.raises(ProtocolError, match=r"Tag\.value: tensor shape \[2, 6\] holds 12 elements, "
                                            r"more than the limit of 10 \(set PPX_MAX_TENSOR_ELEMENTS"):
        codec.decode(codec.encode(m.Tag("a", "n", np.zeros((2, 6)))))
    with pytest.raises(ProtocolError, match=r"RunResult\.result: tensor shape \[11\]"):
        codec.decode(codec.encode(m.RunResult(np.zeros(11))))
    frame = codec.encode(m.StageResult(run_locally=False, outputs=(np.zeros(3), np.zeros(11))))
    with pytest.raises(ProtocolError, match=r"StageResult\.outputs\[1\]: tensor shape \[11\]"):
        codec.decode(frame)


@pytest.mark.parametrize("shape", [[0, 2**31 - 1, 2**31 - 1], [2**30, 2**30, 0]], ids=str)
def test_empty_tensor_with_absurd_extents_names_the_field(shape: list[int]) -> None:
    with pytest.raises(ProtocolError, match=re.escape(f"Tag.value: tensor shape {shape} holds")):
        codec.decode(tag_frame(np.zeros(0), shape))


def test_shape_product_far_beyond_the_data_names_the_field() -> None:
    with pytest.raises(ProtocolError, match=r"Tag\.value: tensor shape \[65536, 65536\] holds 4\.295e\+09"):
        codec.decode(tag_frame(np.zeros(4), [2**16, 2**16]))


def test_more_dimensions_than_allowed_names_the_field() -> None:
    with pytest.raises(ProtocolError, match=r"Tag\.value: tensor shape has 40 dimensions, more than the limit"):
        codec.decode(tag_frame(np.zeros(1), [1] * 40))


def test_data_longer_than_the_frame_names_the_field() -> None:
    data = np.array([1.0, 2.0, 3.0])
    frame = codec.encode(m.Tag("a", "n", data))
    at = frame.index(struct.pack("<I", 3) + data.tobytes())
    claimed = frame[:at] + struct.pack("<I", 2**30) + frame[at + 4:]
    with pytest.raises(ProtocolError, match=r"Tag\.value: truncated or corrupt message: vector .* lies outside"):
        codec.decode(claimed)


def test_parameters_broadcasting_beyond_the_cap_name_the_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ppx.limits.MAX_TENSOR_ELEMENTS", 100)
    column, row = np.zeros((20, 1)), np.ones((1, 20))
    frame = codec.encode(m.Sample("a", "x", m.WireDistribution(1, (column, row))))
    with pytest.raises(ProtocolError, match=r"Sample\.distribution: Normal parameters \(mean, stddev\) broadcast: "
                                            r"tensor shape \[20, 20\] holds 400 elements"):
        codec.decode(frame)


@pytest.mark.parametrize("type_id", [0, len(m.MESSAGE_TYPES) + 1, 255])
def test_unknown_message_type_names_the_type_id(type_id: int) -> None:
    writer = Writer()
    frame = writer.finish(writer.table(octets=((0, type_id),)))
    with pytest.raises(ProtocolError, match=f"unknown message type id {type_id}$"):
        codec.decode(frame)
