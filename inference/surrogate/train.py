"""Train the conditional Wasserstein GAN with gradient penalty on recorded showers.

First the response model (``response.py``) is fitted to all the recorded
showers (it is neither trained adversarially nor selected on the held-out
ones); the generator then learns only how a shower of a given total spreads
over layers and cells. Each step trains the critic on a batch of real showers
and as many generated ones for the same conditions; every ``critic_steps``
critic steps the generator takes one step. After every epoch the generator
draws showers anew for held-out conditions, and the mean Kolmogorov-Smirnov
distance over the shower-shape observables scores it; the best-scoring weights
are kept apart. The checkpoint (weights, optimiser states, config, history) is
rewritten atomically after each epoch, so an interrupted run resumes from its
last completed epoch and, noise being seeded per epoch, continues as if never
stopped.

Example:
    >>> data = read_showers("showers.h5")                                 # doctest: +SKIP
    >>> result = train_surrogate(data, "surrogate.pt", epochs=20)         # doctest: +SKIP
    >>> result = train_surrogate(data, "surrogate.pt", epochs=40, resume=True)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from typing import Any, Optional, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from inference.surrogate.checkpoint import checkpoint_config, load_checkpoint, load_weights, save_checkpoint
from inference.surrogate.conditioning import Conditioning
from inference.surrogate.config import ARCHITECTURE_FIELDS, SurrogateConfig
from inference.surrogate.critic import ShowerCritic
from inference.surrogate.mean_shape import mean_shapes
from inference.surrogate.metrics import ks_distance
from inference.surrogate.observables import shower_observables
from inference.surrogate.response import ResponseModel
from inference.surrogate.sampler import ShowerSampler
from inference.surrogate.showers_file import ShowerData

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class TrainingResult:
    """What a training run left behind.

    Attributes:
        path: the checkpoint.
        epochs: epochs completed in total (a resumed run counts the earlier ones).
        best_epoch: the epoch whose generator scored best (the one ``Surrogate.load`` uses).
        best_score: its mean KS distance over the observables on held-out showers.
        history: one dict per epoch: critic_loss, generator_loss, wasserstein, ks, seconds.
        seconds: wall time of this call.
    """

    path: str
    epochs: int
    best_epoch: int
    best_score: float
    history: list[dict[str, float]]
    seconds: float


def train_surrogate(data: ShowerData, path: PathLike, *, resume: bool = False, progress: bool = True,
                    **settings: Any) -> TrainingResult:
    """Train a surrogate on ``data``, checkpointing to ``path`` after every epoch.

    Args:
        data: recorded showers with their kinds and incident energies.
        path: the checkpoint to write (and, with ``resume``, to continue from).
        resume: continue from ``path`` if it exists, up to ``epochs`` epochs in all.
        progress: show a progress bar.
        **settings: fields of ``SurrogateConfig``. When resuming, the saved config
            applies and only training settings (``epochs``, learning rates, ...)
            may be changed; architecture fields must match.

    Raises:
        ValueError: invalid settings, too few showers, or a checkpoint that does
            not fit the settings or the data.
        FloatingPointError: the losses stopped being finite (the checkpoint keeps the epoch before).
    """
    started = time.perf_counter()
    path = os.fspath(path)
    checkpoint = load_checkpoint(path) if resume and os.path.exists(path) else None
    config = _resumed_config(checkpoint, settings, path) if checkpoint else SurrogateConfig(**settings)
    run = _Run(data, config, checkpoint, path)
    if run.epoch >= config.epochs:
        log.info("%s already has %d of %d epochs; nothing to train", path, run.epoch, config.epochs)
    steps = run.batches_per_epoch
    with tqdm(total=config.epochs * steps, initial=run.epoch * steps, disable=not progress, unit="batch",
              desc="train") as bar:
        while run.epoch < config.epochs:
            record = run.train_epoch(bar)
            if not all(np.isfinite(record[key]) for key in ("critic_loss", "generator_loss", "wasserstein")):
                raise FloatingPointError(f"training diverged in epoch {run.epoch}: critic loss "
                                         f"{record['critic_loss']}, generator loss {record['generator_loss']}; "
                                         f"{path} keeps epoch {run.epoch - 1}. Try smaller learning rates")
            save_checkpoint(path, run.state())
            bar.set_postfix(epoch=run.epoch, W=f"{record['wasserstein']:.3g}", ks=f"{record['ks']:.3f}",
                            best=run.best["epoch"])
            log.info("epoch %d: critic %.4g, generator %.4g, Wasserstein %.4g, mean KS %.4f (best %d)",
                     run.epoch, record["critic_loss"], record["generator_loss"], record["wasserstein"],
                     record["ks"], run.best["epoch"])
    return TrainingResult(path, run.epoch, run.best["epoch"], run.best["score"], list(run.history),
                          time.perf_counter() - started)


def _resumed_config(checkpoint: dict[str, Any], settings: dict[str, Any], path: str) -> SurrogateConfig:
    saved = checkpoint_config(checkpoint)
    clashes = [f"{name}={settings[name]!r} (saved {getattr(saved, name)!r})" for name in ARCHITECTURE_FIELDS
               if name in settings and settings[name] != getattr(saved, name)]
    if clashes:
        raise ValueError(f"cannot resume {path} with a different architecture: {', '.join(clashes)}; "
                         f"train to a new file instead")
    return replace(saved, **settings)


def _split(count: int, config: SurrogateConfig) -> tuple[np.ndarray, np.ndarray]:
    validation = int(round(count * config.validation_fraction))
    if validation < 1 or count - validation < 1:
        raise ValueError(f"too few showers ({count}) to hold out a validation fraction of "
                         f"{config.validation_fraction}")
    order = np.random.default_rng(config.seed).permutation(count)
    return np.sort(order[validation:]), np.sort(order[:validation])


def _noise_width(showers: np.ndarray, energies: np.ndarray) -> float:
    """A first guess of the cells' electronic noise: the spread of the negative cells.

    Cells below zero are noise alone; for zero-mean Gaussian noise their mean
    square is the noise variance. Without negative cells the data look
    noiseless, and the guess is negligible against the showers.
    """
    negative = showers[showers < 0]
    if negative.size:
        return float(np.sqrt(np.mean(negative.astype(np.float64) ** 2)))
    return 1e-9 * float(np.mean(energies))


class _Run:
    """The networks, optimisers and bookkeeping of one training run."""

    def __init__(self, data: ShowerData, config: SurrogateConfig, checkpoint: Optional[dict[str, Any]],
                 path: str) -> None:
        if len(data) and not np.all(data.energies > 0):
            raise ValueError("incident energies must be positive")
        self.data, self.config, self.path = data, config, path
        train, validation = _split(len(data), config)
        self.train_set, self.validation_set = data.subset(train), data.subset(validation[:config.selection_showers])
        self.fractions = torch.from_numpy(self.train_set.showers / self.train_set.energies[:, None].astype(np.float32))
        self.kinds = torch.from_numpy(self.train_set.kinds)
        self.energies = torch.from_numpy(self.train_set.energies.astype(np.float32))
        log_energy = np.log(self.train_set.energies)
        # The response model is not trained adversarially and is not selected on the held-out showers, so it
        # learns from all of them: the response's fidelity is limited by the number of showers it sees.
        self.response = ResponseModel.fit(data.kinds, data.energies,
                                          data.showers.sum(axis=1, dtype=np.float64) / data.energies,
                                          len(data.kind_names))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.conditioning = Conditioning(len(data.kind_names), float(log_energy.mean()),
                                             float(log_energy.std()) or 1.0)
            self.sampler = ShowerSampler.from_config(config, data.geometry, self.conditioning, self.response)
            self.generator = self.sampler.generator
            self.critic = ShowerCritic(data.geometry, self.conditioning.dim, config.critic_hidden,
                                       config.cell_floor)
            self.generator.set_cell_noise(_noise_width(self.train_set.showers, self.train_set.energies))
            self.sampler.start_from_mean_shape(mean_shapes(self.train_set.kinds, self.train_set.energies,
                                                           self.train_set.showers, data.geometry))
            self.critic.set_scales(self.fractions)
        betas = (config.beta1, config.beta2)
        self.generator_optimizer = torch.optim.Adam(self.generator.parameters(), lr=config.generator_lr, betas=betas)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr, betas=betas)
        self.epoch, self.critic_updates = 0, 0
        self.history: list[dict[str, float]] = []
        self.best: dict[str, Any] = {"epoch": 0, "score": float("inf")}
        self.best_generator = self.generator.state_dict()
        self.real_observables = shower_observables(self.validation_set.showers, self.validation_set.energies,
                                                   data.geometry)
        if checkpoint is not None:
            self._restore(checkpoint)

    @property
    def batches_per_epoch(self) -> int:
        return -(-len(self.train_set) // self.config.batch_size)

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint["data"]
        if tuple(saved["kind_names"]) != self.data.kind_names or saved["num_showers"] != len(self.data):
            raise ValueError(f"the checkpoint was trained on {saved['num_showers']} showers of kinds "
                             f"{tuple(saved['kind_names'])}, not on these {len(self.data)} of kinds "
                             f"{self.data.kind_names}; resume with the same data")
        for module, key in ((self.conditioning, "conditioning"), (self.response, "response"),
                            (self.generator, "generator"), (self.critic, "critic")):
            load_weights(module, checkpoint[key], key, self.path)
        self.generator_optimizer.load_state_dict(checkpoint["generator_optimizer"])
        self.critic_optimizer.load_state_dict(checkpoint["critic_optimizer"])
        for optimizer, lr in ((self.generator_optimizer, self.config.generator_lr),
                              (self.critic_optimizer, self.config.critic_lr)):
            for group in optimizer.param_groups:
                group["lr"] = lr
        self.epoch, self.critic_updates = int(checkpoint["epoch"]), int(checkpoint["critic_updates"])
        self.history = [dict(record) for record in checkpoint["history"]]
        self.best = dict(checkpoint["best"])
        self.best_generator = checkpoint["best_generator"]

    def train_epoch(self, bar: tqdm) -> dict[str, float]:
        started = time.perf_counter()
        config = self.config
        noise = torch.Generator().manual_seed(config.seed * 1_000_003 + self.epoch)
        self.generator.train()
        self.critic.train()
        totals = {"critic_loss": 0.0, "generator_loss": 0.0, "wasserstein": 0.0}
        counts = {"critic": 0, "generator": 0}
        for batch in torch.randperm(len(self.train_set), generator=noise).split(config.batch_size):
            kinds, energies = self.kinds[batch], self.energies[batch]
            condition = self.conditioning(kinds, energies)
            critic_loss, wasserstein = self._critic_step(self.fractions[batch], kinds, condition, energies, noise)
            totals["critic_loss"] += critic_loss
            totals["wasserstein"] += wasserstein
            counts["critic"] += 1
            self.critic_updates += 1
            if self.critic_updates % config.critic_steps == 0:
                totals["generator_loss"] += self._generator_step(kinds, condition, energies, noise)
                counts["generator"] += 1
            bar.update(1)
        self.epoch += 1
        ks = self.score()
        if ks < self.best["score"]:
            self.best = {"epoch": self.epoch, "score": ks}
            self.best_generator = {name: value.clone() for name, value in self.generator.state_dict().items()}
        record = {"epoch": self.epoch,
                  "critic_loss": totals["critic_loss"] / max(counts["critic"], 1),
                  "generator_loss": totals["generator_loss"] / max(counts["generator"], 1),
                  "wasserstein": totals["wasserstein"] / max(counts["critic"], 1),
                  "ks": ks, "seconds": time.perf_counter() - started}
        self.history.append(record)
        return record

    def _generate(self, kinds: torch.Tensor, energies: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        """Generated showers as fractions of the incident energy."""
        return self.sampler(kinds, energies, noise) / energies.unsqueeze(1)

    def _critic_step(self, real: torch.Tensor, kinds: torch.Tensor, condition: torch.Tensor, energies: torch.Tensor,
                     noise: torch.Generator) -> tuple[float, float]:
        with torch.no_grad():
            fake = self._generate(kinds, energies, noise)
        real_inputs, fake_inputs = self.critic.inputs(real), self.critic.inputs(fake)
        real_score, fake_score = self.critic(real_inputs, condition), self.critic(fake_inputs, condition)
        mix = torch.rand(len(real), 1, generator=noise)
        mixed = (mix * real_inputs + (1 - mix) * fake_inputs).requires_grad_(True)
        gradient, = torch.autograd.grad(self.critic(mixed, condition).sum(), mixed, create_graph=True)
        penalty = ((gradient.norm(dim=1) - 1) ** 2).mean()
        wasserstein = real_score.mean() - fake_score.mean()
        # The small drift term keeps real scores near zero, as in progressive-growing GANs.
        loss = -wasserstein + self.config.gradient_penalty * penalty + 1e-3 * (real_score ** 2).mean()
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optimizer.step()
        return loss.item(), wasserstein.item()

    def _generator_step(self, kinds: torch.Tensor, condition: torch.Tensor, energies: torch.Tensor,
                        noise: torch.Generator) -> float:
        fake = self._generate(kinds, energies, noise)
        loss = -self.critic(self.critic.inputs(fake), condition).mean()
        self.generator_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.generator_optimizer.step()
        return loss.item()

    def score(self) -> float:
        """Mean KS distance over the observables, generated against held-out real showers."""
        validation = self.validation_set
        self.generator.eval()
        with torch.no_grad():
            energy = torch.from_numpy(validation.energies.astype(np.float32))
            noise = torch.Generator().manual_seed(self.config.seed + 1)
            showers = self.sampler(torch.from_numpy(validation.kinds), energy, noise).numpy()
        self.generator.train()
        generated = shower_observables(showers, validation.energies, validation.geometry)
        return float(np.mean([ks_distance(self.real_observables[name], generated[name]) for name in generated]))

    def state(self) -> dict[str, Any]:
        data = self.data
        return {
            "config": self.config.to_dict(),
            "data": {"kind_names": list(data.kind_names), "energy_unit": data.energy_unit,
                     "layer_shapes": [list(shape) for shape in data.geometry.layer_shapes],
                     "extent_mm": list(data.geometry.extent_mm), "num_showers": len(data),
                     "energy_range": [float(data.energies.min()), float(data.energies.max())]},
            "conditioning": self.conditioning.state_dict(), "response": self.response.state_dict(),
            "generator": self.generator.state_dict(), "critic": self.critic.state_dict(),
            "generator_optimizer": self.generator_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "best_generator": self.best_generator, "best": dict(self.best),
            "epoch": self.epoch, "critic_updates": self.critic_updates, "history": list(self.history),
        }
