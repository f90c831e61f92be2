"""Trace files: round trips through real HDF5 files, atomic writes, and rejected bad files."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

from inference.trace import Trace
from inference.trace_file import (TraceFile, TraceWriter, read_traces, trace_records,
                                  write_traces)
from ppx.messages import RECORD_OBSERVE, RECORD_SAMPLE, RECORD_TAG, WireDistribution


def normal(mean: float) -> WireDistribution:
    return WireDistribution(1, (np.array(mean), np.array(1.0)))


def make_trace(i: int) -> Trace:
    """A trace whose structure and result depend on ``i``."""
    trace = Trace()
    trace.add(RECORD_SAMPLE, "gun/energy", "energy", np.array(10.0 + i), wire=normal(10.0))
    for _ in range(i % 3):  # repeated address: instances 0, 1
        trace.add(RECORD_SAMPLE, f"decay/channel_{i % 2}", "",
                  np.array(float(i % 3)), wire=WireDistribution(3, (np.array([0.2, 0.3, 0.5]),)),
                  control=False)
    hits = np.arange(2 * (i % 4), dtype=np.float64).reshape(-1, 2)
    trace.add(RECORD_TAG, "calo/hits", "hits", hits)
    trace.add(RECORD_OBSERVE, "calo/obs", "obs", np.full((2, 3), float(i)), wire=normal(0.0))
    trace.result = None if i % 5 == 0 else np.array([float(i), -1.0])
    return trace


def assert_same_trace(read: Trace, written: Trace) -> None:
    assert len(read) == len(written)
    for got, want in zip(read.choices, written.choices):
        assert (got.kind, got.address, got.name, got.instance, got.control) == (
            want.kind, want.address, want.name, want.instance, want.control)
        assert got.key == want.key
        np.testing.assert_array_equal(got.value, want.value)
        assert got.value.shape == np.shape(want.value)
        if want.wire is None:
            assert got.wire is None
        else:
            assert got.wire.type_id == want.wire.type_id
            for p, q in zip(got.wire.params, want.wire.params):
                np.testing.assert_array_equal(p, q)
    if written.result is None:
        assert read.result is None
    else:
        np.testing.assert_array_equal(read.result, written.result)


@pytest.fixture
def traces() -> list[Trace]:
    return [make_trace(i) for i in range(23)]


def test_chunked_writes_read_back_whole_and_in_slices(tmp_path, traces):
    path = tmp_path / "traces.h5"
    log_weights = np.linspace(-3.0, 1.0, len(traces))
    with TraceWriter(path, model_name="tau-decay") as writer:
        for start in range(0, len(traces), 10):
            writer.write(traces[start:start + 10], log_weights[start:start + 10])
        assert writer.num_traces == len(traces)
    for read, written in zip(read_traces(path), traces, strict=True):
        assert_same_trace(read, written)
    with TraceFile(path) as stored:
        assert len(stored) == len(traces) and stored.model_name == "tau-decay"
        for read, written in zip(stored.read(7, 15), traces[7:15], strict=True):
            assert_same_trace(read, written)
        assert stored.read(5, 5) == []
        np.testing.assert_array_equal(stored.log_weights(7, 15), log_weights[7:15])
        batch = stored.read_batch(20)
        assert len(batch.trace_offsets) == 4


def test_traces_without_log_weights_and_an_empty_file(tmp_path, traces):
    write_traces(tmp_path / "prior.h5", traces[:4])
    with TraceFile(tmp_path / "prior.h5") as stored:
        assert not stored.has_log_weights and stored.log_weights() is None
    with TraceWriter(tmp_path / "empty.h5"):
        pass
    assert read_traces(tmp_path / "empty.h5") == []


def test_observed_flags_are_not_stored_but_values_are(tmp_path):
    trace = Trace.from_records(trace_records(make_trace(1)), None,
                               observations={"obs": np.ones((2, 3))})
    assert trace.observes[0].observed
    write_traces(tmp_path / "t.h5", [trace])
    (read,) = read_traces(tmp_path / "t.h5")
    assert not read.observes[0].observed
    np.testing.assert_array_equal(read.observes[0].value, np.ones((2, 3)))


def noisy_trace(rng: np.random.Generator) -> Trace:
    """A trace whose observed image is noise, as a detector's is, and whose values need float64."""
    trace = Trace()
    trace.add(RECORD_SAMPLE, "px", "px", np.array(rng.uniform(30, 50)), wire=normal(40.1))
    trace.add(RECORD_OBSERVE, "image", "image", rng.normal(0.0, 0.02, (10, 10, 10)),
              wire=WireDistribution(1, (np.zeros((10, 10, 10)), np.full((10, 10, 10), 0.02))))
    trace.result = np.array(1 / 3)
    return trace


def test_float32_files_halve_noisy_images_and_round_only_values_and_params(tmp_path):
    rng = np.random.default_rng(0)
    traces = [noisy_trace(rng) for _ in range(40)]
    write_traces(tmp_path / "exact.h5", traces, compression="lzf")
    write_traces(tmp_path / "lean.h5", traces, compression="lzf", precision="float32")
    stored = {}
    for name in ("exact", "lean"):
        with h5py.File(tmp_path / f"{name}.h5") as file:
            stored[name] = file["values/data"].id.get_storage_size()
            dtypes = (file["values/data"].dtype, file["params/data"].dtype, file["results/data"].dtype)
    assert dtypes == (np.float32, np.float32, np.float64)
    assert stored["lean"] < 0.55 * stored["exact"], stored
    for read, written in zip(read_traces(tmp_path / "lean.h5"), traces, strict=True):
        for got, want in zip(read.choices, written.choices):
            assert got.value.dtype == np.float64
            np.testing.assert_array_equal(got.value, np.float32(want.value))
            assert not np.array_equal(got.value, want.value)
            np.testing.assert_array_equal(got.wire.params[1], np.float32(want.wire.params[1]))
        assert read.result == written.result  # results stay exact


def test_unknown_precision_is_named(tmp_path, traces):
    with pytest.raises(ValueError, match="precision must be one of float64, float32, got 'float16'"):
        write_traces(tmp_path / "t.h5", traces, precision="float16")
    assert list(tmp_path.iterdir()) == []


def test_exception_inside_writer_leaves_no_file(tmp_path, traces):
    path = tmp_path / "traces.h5"
    with pytest.raises(RuntimeError, match="simulator died"):
        with TraceWriter(path) as writer:
            writer.write(traces)
            raise RuntimeError("simulator died")
    assert list(tmp_path.iterdir()) == []


def test_failed_rewrite_keeps_the_old_file(tmp_path, traces):
    path = tmp_path / "traces.h5"
    write_traces(path, traces[:2])
    with pytest.raises(ValueError, match="log weights"):
        with TraceWriter(path) as writer:
            writer.write(traces[2:4], [0.0, 1.0])
            writer.write(traces[4:6])
    assert len(read_traces(path)) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["traces.h5"]


def test_choice_without_distribution_is_refused(tmp_path):
    trace = Trace()
    trace.add(RECORD_SAMPLE, "x", "x", np.array(1.0))
    with pytest.raises(ValueError, match="'x'.*no distribution"):
        write_traces(tmp_path / "t.h5", [trace])
    assert list(tmp_path.iterdir()) == []


def test_trace_file_pickles_as_its_path(tmp_path, traces):
    write_traces(tmp_path / "t.h5", traces[:3])
    with TraceFile(tmp_path / "t.h5") as stored:
        copy = pickle.loads(pickle.dumps(stored))
    assert_same_trace(copy.read(2, 3)[0], traces[2])
    copy.close()


def test_file_that_is_not_hdf5_is_rejected(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("not a trace file")
    with pytest.raises(ValueError, match=f"{path}.*HDF5"):
        TraceFile(path)


def test_foreign_hdf5_file_is_rejected(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as file:
        file["data"] = np.zeros(3)
    with pytest.raises(ValueError, match=f"{path}: not a ppx trace file"):
        TraceFile(path)


@pytest.mark.parametrize("damage, problem", [
    (lambda f: f.attrs.__setitem__("version", 2), "version 2"),
    (lambda f: f.__delitem__("params/shapes"), "params/shapes is missing"),
    (lambda f: f["kind"].resize((3,)), "kind has 3 entries"),
    (lambda f: f["trace_offsets"].__setitem__(1, 10_000), "corrupt trace file"),
    (lambda f: f["address"].__setitem__(0, 999), "string index"),
    (lambda f: f["values/shapes"].__setitem__(0, 7), "shapes do not match"),
])
def test_corrupt_trace_file_is_rejected(tmp_path, traces, damage, problem):
    path = tmp_path / "damaged.h5"
    write_traces(path, traces[:6])
    with h5py.File(path, "a") as file:
        damage(file)
    with pytest.raises(ValueError, match=problem) as caught:
        read_traces(path)
    assert str(path) in str(caught.value)
