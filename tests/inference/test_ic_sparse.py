"""IC on the LArTPC simulator's full sparse image, embedded by the sparse 3D CNN, learns within a CI budget."""

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


def test_ic_with_the_sparse_embedding_learns_from_full_sparse_images():
    torch.manual_seed(0)
    simulator = LocalSimulator(lartpc.make_model(32, observe="sparse"))
    trainer = Trainer(PriorBatches(simulator, 32), NetworkConfig(lstm_dim=32, observation_dim=32),
                      TrainingConfig(batch_size=32, validation_size=128, validate_every=1600, learning_rate=3e-3))
    progress = trainer.train(3200, progress_bar=False)
    # Sparse 3D observations get the sparse embedding by default, fed the active voxels only.
    assert trainer.network.sparse_observations == {"image"}
    assert type(trainer.network.observation_embeddings["o0"]).__name__ == "SparseCNN3dEmbedding"
    start, end = progress["validation"][0][1], progress["validation"][-1][1]
    # About 22 nats at the start (mostly the uniform vertex, energy and angles). The same network fed
    # empty images gains 0.2 nats here; reading the images it gained 1.5-1.7 (three seeds).
    assert end < start - 1.0, (start, end)
