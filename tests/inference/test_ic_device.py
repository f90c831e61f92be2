"""Training on another device: every tensor of a training step is built where the network is.

No CUDA device is needed for the first test: with torch's default device set to
``meta``, any tensor the network builds without naming its device lands on
``meta`` and fails against the CPU weights, as it would fail against CUDA ones.
"""

from __future__ import annotations

import pytest
import torch

from inference.ic import NetworkConfig, OnlineSource, Trainer, TrainingConfig, load_checkpoint
from inference.ic.network import InferenceNetwork
from inference.local import LocalSimulator
from simulators import branching, tau_decay


@pytest.mark.parametrize("model, embeddings", [
    (branching.model, {}),
    (tau_decay.make_model(image_source="likelihood"), {"calorimeter": "cnn-clusters"}),
], ids=["branching", "tau"])
def test_a_training_step_builds_every_tensor_on_the_networks_device(model, embeddings):
    torch.manual_seed(0)
    traces = LocalSimulator(model).prior(12)
    network = InferenceNetwork.for_traces(NetworkConfig(lstm_dim=16, embeddings=embeddings), traces[:2])
    torch.set_default_device("meta")
    try:
        network.learn_addresses(traces)
        loss = network.loss(traces)
        loss.backward()
    finally:
        torch.set_default_device(None)
    assert {p.device.type for p in network.parameters()} == {"cpu"}
    assert torch.isfinite(loss) and loss.item() == pytest.approx(network.loss(traces).item())


@pytest.mark.gpu
def test_a_network_trained_on_cuda_loads_and_scores_alike_on_the_cpu(tmp_path):
    from simulators import gaussian
    checkpoint = tmp_path / "gaussian.ckpt"
    torch.manual_seed(0)
    source = OnlineSource(LocalSimulator(gaussian.model), batch_size=64)
    try:
        trainer = Trainer(source, NetworkConfig(lstm_dim=32), TrainingConfig(validate_every=640),
                          checkpoint=str(checkpoint), device="cuda")
        trainer.train(1280, progress_bar=False)
        validation = trainer.progress["validation"]
        assert validation[-1][1] < validation[0][1]
        resumed = Trainer(source, checkpoint=str(checkpoint), resume=True, device="cuda")
        resumed.train(1920, progress_bar=False)
    finally:
        source.close()
    assert next(trainer.network.parameters()).is_cuda
    on_cpu, _ = load_checkpoint(checkpoint)
    traces = trainer.validation[:32]
    with torch.no_grad():
        torch.testing.assert_close(on_cpu.log_q(traces), resumed.network.log_q(traces).cpu(), rtol=1e-4, atol=1e-4)
