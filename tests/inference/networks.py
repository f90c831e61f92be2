"""IC networks the engine tests train for themselves."""

from __future__ import annotations

import torch

from inference.ic import NetworkConfig, OnlineSource, Trainer, TrainingConfig
from inference.local import LocalSimulator


def barely_train(model, checkpoint=None) -> Trainer:
    """A small network after ten steps of 1e-3: its proposals are far wider than a tail posterior."""
    torch.manual_seed(0)
    source = OnlineSource(LocalSimulator(model), batch_size=64)
    try:
        trainer = Trainer(source, NetworkConfig(lstm_dim=32, observation_dim=32, components=3),
                          TrainingConfig(learning_rate=1e-3, validate_every=10_000, validation_size=64), checkpoint=checkpoint)
        trainer.train(640, progress_bar=False)
    finally:
        source.close()
    return trainer
