"""Sparse observed images through the engine: traces, prior batches, HDF5 files, weights and IC.

The LArTPC simulator observing its full sparse image (``observe="sparse"``)
provides the images, served over ipc or run in-process.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from inference.ic import InferenceNetwork, NetworkConfig, NetworkProposal, load_checkpoint, save_checkpoint
from inference.importance import importance_sampling, log_weights
from inference.local import LocalSimulator
from inference.observations import as_observations, load_observation_file
from inference.remote import RemoteSimulator
from inference.trace_file import TraceFile, TraceWriter, read_traces
from ppx.messages import RECORD_OBSERVE
from ppx.sparse import SparseArray
from ppx.sparse_normal import SparseNormal
from simulators import lartpc

SIZE = 64


def observed_image(trace) -> SparseArray:
    return trace.named("image").value


@pytest.fixture
def sparse_traces() -> list:
    torch.manual_seed(0)
    return LocalSimulator(lartpc.make_model(SIZE, observe="sparse")).prior(12)


def test_served_simulator_sends_sparse_images_one_trace_at_a_time_and_in_batches(start_simulator) -> None:
    address = start_simulator("simulators.lartpc", "ipc", "--size", str(SIZE), "--observe", "sparse")
    with RemoteSimulator(address, timeout=30, handshake_timeout=60) as simulator:
        assert "sparse-tensor" in simulator.capabilities
        stepped = simulator.run()
        batched = simulator.prior(5, batch_size=5)
    for trace in [stepped] + batched:
        choice = trace.named("image")
        assert isinstance(choice.value, SparseArray) and choice.value.shape == (SIZE,) * 3
        assert isinstance(choice.distribution, SparseNormal)
        assert np.isfinite(choice.log_prob)
    weights = log_weights(simulator_traces_with(batched, observed_image(stepped)))
    assert np.isfinite(weights).all()


def simulator_traces_with(traces: list, image: SparseArray) -> list:
    """The traces with ``image`` substituted as the observation (what the engine does by name)."""
    for trace in traces:
        choice = trace.named("image")
        choice.value, choice.observed = image, True
    return traces


def test_sparse_weights_equal_the_dense_normals(sparse_traces) -> None:
    image = observed_image(sparse_traces[0])
    for trace in simulator_traces_with(sparse_traces[1:4], image):
        choice = trace.named("image")
        mean = torch.from_numpy(choice.distribution.loc.to_dense())
        dense = torch.distributions.Normal(mean, lartpc.SPARSE_NOISE).log_prob(torch.from_numpy(image.to_dense()))
        assert choice.log_prob == pytest.approx(float(dense.sum()), rel=1e-12)


def test_importance_sampling_takes_a_sparse_observation_from_torch() -> None:
    torch.manual_seed(1)
    simulator = LocalSimulator(lartpc.make_model(32, observe="sparse"))
    image = observed_image(simulator.run())
    observed = torch.sparse_coo_tensor(torch.from_numpy(image.coordinates.T), torch.from_numpy(image.values),
                                       image.shape, check_invariants=True)
    posterior = importance_sampling(simulator, 20, {"image": observed})
    assert np.isfinite(posterior.log_weights).all() and 0 < posterior.ess <= 20
    assert all(isinstance(observed_image(t), SparseArray) and t.named("image").observed for t in posterior.traces)


def test_observation_files_and_checks_accept_sparse_images(tmp_path) -> None:
    image = SparseArray(np.array([[1, 2, 3]]), np.array([2.5]), (4, 4, 4))
    path = tmp_path / "observed.h5"
    with h5py.File(path, "w") as file:
        group = file.create_group("image")
        group["coordinates"], group["values"], group["shape"] = image.coordinates, image.values, [4, 4, 4]
        file["energy"] = 3.0
    loaded = load_observation_file(path)
    assert isinstance(loaded["image"], SparseArray) and loaded["image"].to_dense()[1, 2, 3] == 2.5
    assert float(loaded["energy"]) == 3.0
    with pytest.raises(ValueError, match="'image' holds NaN"):
        as_observations({"image": SparseArray(image.coordinates, np.array([np.nan]), image.shape)})


def test_trace_files_store_only_the_active_voxels(tmp_path, sparse_traces) -> None:
    torch.manual_seed(2)
    dense_traces = LocalSimulator(lartpc.make_model(SIZE, summary_size=4)).prior(3)
    path = tmp_path / "lartpc.h5"
    with TraceWriter(path, model_name="lartpc") as writer:
        writer.write(dense_traces)  # the sparse columns appear with the first sparse chunk, all dense before
        writer.write(sparse_traces[:5])
        writer.write(sparse_traces[5:])
    stored = read_traces(path)
    for read, written in zip(stored, dense_traces + sparse_traces):
        for got, want in zip(read.choices, written.choices):
            if isinstance(want.value, SparseArray):
                assert isinstance(got.value, SparseArray) and got.value.shape == want.value.shape
                np.testing.assert_array_equal(got.value.coordinates, want.value.coordinates)
                np.testing.assert_array_equal(got.value.values, want.value.values)
                assert isinstance(got.distribution, SparseNormal) and got.log_prob == pytest.approx(want.log_prob)
            else:
                np.testing.assert_array_equal(got.value, want.value)
    with TraceFile(path) as file:
        middle = file.read(2, 6)  # a slice across the dense and the sparse chunks
        assert [isinstance(observed_image(t), SparseArray) for t in middle] == [False, True, True, True]
    voxels = sum(observed_image(t).nnz for t in sparse_traces)
    with h5py.File(path, "r") as file:
        # Each sparse image stored twice (observed value, SparseNormal mean): N values and 3 N coordinates.
        assert file["values/coordinates"].shape == (3 * voxels,)
        assert file["params/coordinates"].shape == (3 * voxels,)
        # The observed values are the sparse images' voxels plus, per trace, 7 samples and 2 tags, and the
        # dense 4^3 summary images of the first three traces: no dense 64^3 array anywhere.
        assert file["values/data"].shape == (voxels + 15 * 9 + 3 * 4 ** 3,)
        assert file["values/sparse"][:].tolist().count(1) == len(sparse_traces)
        assert "sparse" not in file["results"]


def test_ic_network_embeds_sparse_images_without_densifying_and_reloads(tmp_path, sparse_traces) -> None:
    network = InferenceNetwork.for_traces(NetworkConfig(lstm_dim=16, observation_dim=8), sparse_traces)
    assert network.sparse_observations == {"image"}
    assert type(network.observation_embeddings["o0"]).__name__ == "SparseCNN3dEmbedding"
    assert np.isfinite(network.loss(sparse_traces).item())
    save_checkpoint(tmp_path / "net.ckpt", network)
    reloaded, _ = load_checkpoint(tmp_path / "net.ckpt")
    assert reloaded.sparse_observations == {"image"}
    observed = {"image": observed_image(sparse_traces[0])}
    with torch.no_grad():
        torch.testing.assert_close(reloaded.eval().embed_observations([observed]),
                                   network.eval().embed_observations([observed]))
    proposal = NetworkProposal(reloaded, observed)
    trace = LocalSimulator(lartpc.make_model(SIZE, observe="sparse")).run(proposal.controller(), observed)
    assert [c.proposal_log_prob is not None for c in trace.samples] == [True] * 7
    assert [c.observed for c in trace.choices if c.kind == RECORD_OBSERVE] == [True]
