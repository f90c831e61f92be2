"""Classifier two-sample test: how well a small network tells real showers from generated ones.

A multilayer perceptron is trained to label real (1) against generated (0)
inputs on one part of the data, stopped on a validation part, and scored by its
ROC AUC on a held-out test part. 0.5 means it cannot tell them apart; 1.0 means
it always can. Because the test part is unseen, the AUC of two samples of one
distribution averages 0.5 with the spread of ``metrics.auc_standard_error``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from inference.surrogate.metrics import auc_standard_error, roc_auc


@dataclass(frozen=True)
class ClassifierConfig:
    """Settings of the classifier test (see ``classifier_auc``)."""

    hidden: int = 256
    layers: int = 2
    epochs: int = 40
    batch_size: int = 256
    learning_rate: float = 1e-3
    dropout: float = 0.1
    patience: int = 8
    validation_fraction: float = 0.2
    test_fraction: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if not (0 < self.validation_fraction and 0 < self.test_fraction
                and self.validation_fraction + self.test_fraction < 1):
            raise ValueError(f"validation_fraction and test_fraction must be positive and sum below 1, "
                             f"got {self.validation_fraction} and {self.test_fraction}")


@dataclass(frozen=True)
class ClassifierResult:
    """The test's outcome.

    Attributes:
        auc: ROC AUC on the held-out test part.
        standard_error: the AUC's spread for indistinguishable samples of the test part's sizes.
        num_test: test examples (real plus generated).
        epochs: epochs trained before stopping.
    """

    auc: float
    standard_error: float
    num_test: int
    epochs: int


def classifier_auc(real: np.ndarray, generated: np.ndarray, **settings: object) -> ClassifierResult:
    """Train a classifier to separate ``real`` from ``generated`` and return its test AUC.

    Args:
        real: (N, features) real examples.
        generated: (M, features) generated examples.
        **settings: fields of ``ClassifierConfig`` (hidden, layers, epochs, ..., seed).

    Raises:
        ValueError: the samples have different features or too few examples to split.
    """
    config = ClassifierConfig(**settings)
    real, generated = np.asarray(real, dtype=np.float32), np.asarray(generated, dtype=np.float32)
    if real.ndim != 2 or generated.ndim != 2 or real.shape[1] != generated.shape[1]:
        raise ValueError(f"expected two (N, features) arrays with the same features, "
                         f"got {real.shape} and {generated.shape}")
    rng = np.random.default_rng(config.seed)
    parts = [_split(len(sample), config, rng) for sample in (real, generated)]
    if min(len(index) for part in parts for index in part) < 1:
        raise ValueError(f"too few examples to split into train, validation and test parts: "
                         f"{len(real)} real, {len(generated)} generated")
    inputs, labels = [], []
    for which in range(3):
        inputs.append(np.concatenate([real[parts[0][which]], generated[parts[1][which]]]))
        labels.append(np.concatenate([np.ones(len(parts[0][which])), np.zeros(len(parts[1][which]))]))
    mean, std = inputs[0].mean(axis=0), inputs[0].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    tensors = [(torch.from_numpy((x - mean) / std), torch.from_numpy(y.astype(np.float32)))
               for x, y in zip(inputs, labels)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        network, epochs = _fit(tensors[0], tensors[1], real.shape[1], config)
        network.eval()
        with torch.no_grad():
            scores = network(tensors[2][0]).squeeze(1).numpy()
    test_labels = labels[2]
    return ClassifierResult(roc_auc(scores, test_labels),
                            auc_standard_error(int(test_labels.sum()), int((1 - test_labels).sum())),
                            len(test_labels), epochs)


def _split(count: int, config: ClassifierConfig, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(count)
    test = int(round(count * config.test_fraction))
    validation = int(round(count * config.validation_fraction))
    return [order[test + validation:], order[test:test + validation], order[:test]]


def _network(features: int, config: ClassifierConfig) -> nn.Module:
    layers: list[nn.Module] = []
    width = features
    for _ in range(config.layers):
        layers += [nn.Linear(width, config.hidden), nn.LeakyReLU(0.2), nn.Dropout(config.dropout)]
        width = config.hidden
    return nn.Sequential(*layers, nn.Linear(width, 1))


def _fit(train: tuple[torch.Tensor, torch.Tensor], validation: tuple[torch.Tensor, torch.Tensor],
         features: int, config: ClassifierConfig) -> tuple[nn.Module, int]:
    network = _network(features, config)
    optimiser = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    x, y = train
    positives = float(y.sum())
    loss_function = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(y) - positives) / max(positives, 1.0)))
    best, best_state, stale, epoch = float("inf"), copy.deepcopy(network.state_dict()), 0, 0
    for epoch in range(1, config.epochs + 1):
        network.train()
        for batch in torch.randperm(len(x)).split(config.batch_size):
            optimiser.zero_grad()
            loss_function(network(x[batch]).squeeze(1), y[batch]).backward()
            optimiser.step()
        network.eval()
        with torch.no_grad():
            loss = float(loss_function(network(validation[0]).squeeze(1), validation[1]))
        if loss < best:
            best, best_state, stale = loss, copy.deepcopy(network.state_dict()), 0
        else:
            stale += 1
            if stale >= config.patience:
                break
    network.load_state_dict(best_state)
    return network, epoch
