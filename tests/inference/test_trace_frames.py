import numpy as np
import pytest
import torch

from inference.local import LocalSimulator
from inference.trace_frames import decode_traces, encode_traces
from ppx.errors import ProtocolError
from simulators import branching


@pytest.fixture(scope="module")
def traces():
    torch.manual_seed(0)
    return LocalSimulator(branching.model).prior(20)


def test_traces_survive_a_frame_with_everything_training_reads(traces):
    decoded = decode_traces(encode_traces(traces))
    assert len(decoded) == len(traces)
    for original, copy in zip(traces, decoded):
        assert [(c.kind, c.address, c.name, c.control, c.key) for c in copy] == \
               [(c.kind, c.address, c.name, c.control, c.key) for c in original]
        for mine, theirs in zip(copy, original):
            np.testing.assert_array_equal(mine.value, np.asarray(theirs.value, dtype=np.float64))
            if theirs.wire is not None:
                assert mine.wire.type_id == theirs.wire.type_id
                for a, b in zip(mine.wire.params, theirs.wire.params):
                    np.testing.assert_array_equal(a, b)
        assert copy.log_prior == pytest.approx(original.log_prior)
        np.testing.assert_array_equal(copy.result, np.asarray(original.result, dtype=np.float64))


def test_a_damaged_frame_is_a_protocol_error_not_a_crash(traces):
    frame = encode_traces(traces)
    with pytest.raises(ProtocolError):
        decode_traces(frame[:len(frame) // 2])
