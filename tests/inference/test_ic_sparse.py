"""The sparse 3D CNN embedding plugged into IC on the LArTPC simulator learns within a CI budget."""

from __future__ import annotations

import torch

from inference.ic import NetworkConfig, Trainer, TrainingConfig
from inference.local import LocalSimulator
from simulators import lartpc


class PriorBatches:
    def __init__(self, simulator: LocalSimulator, size: int) -> None:
        self.simulator = simulator
        self.size = size

    def next_batch(self):
        return self.simulator.prior(self.size)


def test_ic_with_the_sparse_embedding_learns_lartpc_events():
    torch.manual_seed(0)
    simulator = LocalSimulator(lartpc.make_model(32, 8))
    trainer = Trainer(PriorBatches(simulator, 32),
                      NetworkConfig(lstm_dim=32, observation_dim=32, embeddings={"image": "sparse3d"}),
                      TrainingConfig(batch_size=32, validation_size=128, validate_every=1600, learning_rate=3e-3))
    progress = trainer.train(3200, progress_bar=False)
    assert type(trainer.network.observation_embeddings["o0"]).__name__ == "SparseCNN3dEmbedding"
    start, end = progress["validation"][0][1], progress["validation"][-1][1]
    # About 22 nats at the start (mostly the uniform vertex, energy and angles); a network that
    # reads the image locates the vertex and kind and gains well over a nat.
    assert end < start - 1.5, (start, end)
