"""Training the IC network: minimise -log q(x | y) over traces from the prior.

``Trainer`` owns the network, its optimizer and the training progress. Traces
come from an ``OnlineSource`` or ``OfflineSource``; a fixed validation set is
held out first; checkpoints are written atomically every few minutes and at
the end, and a checkpoint resumes training where it stopped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, Optional

import torch
from tqdm.auto import tqdm

from inference.ic.checkpoint import load_checkpoint, save_checkpoint
from inference.ic.config import NetworkConfig
from inference.ic.network import InferenceNetwork
from inference.trace import Trace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    """How to train.

    Attributes:
        batch_size: traces per optimisation step.
        learning_rate: Adam's step size.
        validation_size: traces held out to measure validation loss.
        validate_every: traces between validation measurements.
        checkpoint_every: seconds between checkpoints (one is always written at the end).
        final_learning_rate: fraction of ``learning_rate`` reached at the end of a ``train``
            call, decaying linearly; a smaller final step settles the proposals.
    """

    batch_size: int = 64
    learning_rate: float = 3e-3
    validation_size: int = 256
    validate_every: int = 2048
    checkpoint_every: float = 300.0
    final_learning_rate: float = 0.1

    def __post_init__(self) -> None:
        for name in ("batch_size", "validation_size", "validate_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainingConfig.{name} must be positive, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"TrainingConfig.learning_rate must be positive, got {self.learning_rate}")


class Trainer:
    """Trains (or resumes training) an IC network on traces from a source.

    Args:
        source: ``OnlineSource`` or ``OfflineSource``.
        network_config: sizes of a new network (ignored when resuming).
        config: optimisation settings.
        checkpoint: where checkpoints go; with ``resume`` an existing one is loaded first.
        device: where the network trains (``"cpu"``, ``"cuda"``, ``"cuda:1"``); checkpoints
            load on the CPU whatever device wrote them.
    """

    def __init__(self, source: Any, network_config: Optional[NetworkConfig] = None,
                 config: Optional[TrainingConfig] = None, checkpoint: Optional[str] = None,
                 resume: bool = False, device: str | torch.device = "cpu") -> None:
        self.source = source
        self.config = config or TrainingConfig()
        self.checkpoint = checkpoint
        self.device = torch.device(device)
        self.progress: dict[str, Any] = {"traces": 0, "steps": 0, "seconds": 0.0, "loss": [],
                                         "validation": []}
        self.validation: list[Trace] = []
        if resume:
            if checkpoint is None:
                raise ValueError("resuming needs the checkpoint to resume from")
            self.network, content = load_checkpoint(checkpoint)
            self.network.to(self.device)
            self.optimizer = self._optimizer()
            if content.get("optimizer"):
                self.optimizer.load_state_dict(content["optimizer"])
            self.progress.update(content.get("progress", {}))
            log.info("resumed from %s after %d traces", checkpoint, self.progress["traces"])
        else:
            self.network = None
            self.network_config = network_config or NetworkConfig()
            self.optimizer = None

    def _optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.network.ordered_parameters(), lr=self.config.learning_rate, foreach=True)

    def _prepare(self) -> None:
        while len(self.validation) < self.config.validation_size:
            self.validation.extend(self.source.next_batch())
        self.validation = self.validation[:self.config.validation_size]
        if self.network is None:
            self.network = InferenceNetwork.for_traces(self.network_config, self.validation).to(self.device)
            self.optimizer = self._optimizer()

    def _learn_addresses(self, traces: list[Trace]) -> None:
        new = self.network.learn_addresses(traces)
        if new:
            self.optimizer.param_groups[0]["params"].extend(new)

    def validation_loss(self) -> float:
        """The validation traces' loss; then each head's mixture with its prior is refitted to
        them, so that the loss reported is that of weights fitted before this network state."""
        self._learn_addresses(self.validation)
        self.network.eval()
        with torch.no_grad():
            loss = float(self.network.loss(self.validation))
            self.network.fit_prior_weights(self.validation)
        self.network.train()
        return loss

    def step(self, traces: list[Trace]) -> float:
        self._learn_addresses(traces)
        self.optimizer.zero_grad()
        loss = self.network.loss(traces)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def _traces_in(self, batch: list[Trace]) -> int:
        """Traces the step on ``batch`` trained on (a data-parallel trainer counts every rank's)."""
        return len(batch)

    def _set_learning_rate(self, done: float) -> None:
        scale = 1.0 - (1.0 - self.config.final_learning_rate) * min(max(done, 0.0), 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.learning_rate * scale

    def save(self) -> None:
        if self.checkpoint is not None:
            progress = dict(self.progress, training=asdict(self.config))
            save_checkpoint(self.checkpoint, self.network, self.optimizer, progress)

    def train(self, num_traces: int, progress_bar: bool = True) -> dict[str, Any]:
        """Train until ``num_traces`` traces in total (counting earlier sessions) have been used."""
        self._prepare()
        target = num_traces
        started = time.perf_counter()
        seconds_before = self.progress["seconds"]
        last_checkpoint = started
        next_validation = self.progress["traces"]
        with tqdm(total=target, initial=min(self.progress["traces"], target), disable=not progress_bar,
                  unit="trace", desc="training") as bar:
            while self.progress["traces"] < target:
                if self.progress["traces"] >= next_validation:
                    self.progress["validation"].append((self.progress["traces"], self.validation_loss()))
                    next_validation += self.config.validate_every
                batch = self.source.next_batch()
                self._set_learning_rate(self.progress["traces"] / target)
                loss = self.step(batch)
                count = self._traces_in(batch)
                self.progress["traces"] += count
                self.progress["steps"] += 1
                self.progress["loss"].append((self.progress["traces"], loss))
                elapsed = time.perf_counter() - started
                self.progress["seconds"] = seconds_before + elapsed
                bar.update(count)
                bar.set_postfix(loss=f"{loss:.3f}", val=f"{self.progress['validation'][-1][1]:.3f}",
                                rate=f"{bar.n / max(elapsed, 1e-9):.0f}/s", refresh=False)
                if time.perf_counter() - last_checkpoint > self.config.checkpoint_every:
                    self.save()
                    last_checkpoint = time.perf_counter()
        self.progress["validation"].append((self.progress["traces"], self.validation_loss()))
        self.save()
        return self.progress
