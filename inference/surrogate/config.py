"""The surrogate's settings: one validated, frozen dataclass, saved in every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, Mapping

ARCHITECTURE_FIELDS = ("latent_dim", "generator_hidden", "generator_layers", "cell_pattern", "cell_fluctuations",
                       "critic_hidden", "cell_floor")
"""Fields that shape the networks: a resumed run must keep them."""


@dataclass(frozen=True)
class SurrogateConfig:
    """Architecture and training settings of the conditional Wasserstein GAN.

    Attributes:
        latent_dim: size of the generator's noise input.
        generator_hidden: width of the generator's shared layers.
        generator_layers: how many shared layers the generator has.
        cell_pattern: how the generator spreads a layer's energy over its cells:
            ``"softmax"`` (every cell gets a share; suits data with cell noise)
            or ``"relu"`` (missed cells get exactly nothing; noiseless data).
        cell_fluctuations: give every cell's share independent, Poisson-like
            sampling fluctuations whose size the generator learns per layer.
        critic_hidden: width of the critic's dense layers.
        cell_floor: cell energy, as a fraction of the incident energy, below
            which the critic's log view of a cell stops resolving it.
        epochs: passes over the training showers (a resumed run continues up to this).
        batch_size: showers per critic step.
        critic_steps: critic steps per generator step.
        gradient_penalty: weight of the critic's gradient-norm penalty.
        generator_lr: Adam learning rate of the generator.
        critic_lr: Adam learning rate of the critic.
        beta1: Adam's first-moment decay (both networks).
        beta2: Adam's second-moment decay (both networks).
        validation_fraction: share of the showers held out for model selection.
        selection_showers: at most this many held-out showers are generated
            anew after each epoch to score the generator by KS distance.
        seed: seeds the split, the initial weights and the noise.
    """

    latent_dim: int = 64
    generator_hidden: int = 256
    generator_layers: int = 3
    cell_pattern: Literal["softmax", "relu"] = "softmax"
    cell_fluctuations: bool = True
    critic_hidden: int = 256
    cell_floor: float = 1e-5
    epochs: int = 30
    batch_size: int = 128
    critic_steps: int = 5
    gradient_penalty: float = 10.0
    generator_lr: float = 2e-4
    critic_lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.9
    validation_fraction: float = 0.15
    selection_showers: int = 5000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("latent_dim", "generator_hidden", "generator_layers", "critic_hidden", "epochs",
                     "batch_size", "critic_steps", "selection_showers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("cell_floor", "generator_lr", "critic_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not isinstance(self.cell_fluctuations, bool):
            raise ValueError(f"cell_fluctuations must be True or False, got {self.cell_fluctuations!r}")
        if self.cell_pattern not in ("softmax", "relu"):
            raise ValueError(f"cell_pattern must be 'softmax' or 'relu', got {self.cell_pattern!r}")
        if self.gradient_penalty < 0:
            raise ValueError(f"gradient_penalty must not be negative, got {self.gradient_penalty}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must lie in (0, 1), got {self.validation_fraction}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "SurrogateConfig":
        """The config saved by ``to_dict``; unknown keys are an error naming them."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown surrogate settings {unknown}; expected some of {sorted(known)}")
        return cls(**values)
