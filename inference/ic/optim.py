"""Large-batch optimisation: learning-rate scaling, warm-up, and layer-wise adaptive rates (LARC, LAMB).

Data-parallel training multiplies the batch by the number of ranks. Three
standard remedies keep a large batch training as well as a small one:

* scale the learning rate tuned at a reference batch size with the batch,
  linearly (Goyal et al. 2017) or by its square root (Hoffer et al. 2017);
* ramp the learning rate up linearly over the first steps (warm-up);
* give every parameter tensor its own step size from the ratio of its weight
  norm to its update norm: LARC (You et al. 2017, the clipped form of LARS,
  on SGD with momentum) or LAMB (You et al. 2019, the same idea on Adam).

``LargeBatchConfig`` chooses among them; ``make_optimizer`` builds the optimizer.
Both optimizers keep one parameter group whose ``params`` list may grow between
steps, as the IC network's does when new addresses appear.

Example:
    >>> config = LargeBatchConfig(optimizer="lamb", lr_scaling="sqrt", warmup_steps=100)
    >>> scaled_learning_rate(1e-3, 4096, config)  # tuned at 64 traces, trained at 4096
    0.008
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Literal

import torch

OptimizerName = Literal["adam", "lamb", "larc"]
ScalingRule = Literal["none", "linear", "sqrt"]


@dataclass(frozen=True)
class LargeBatchConfig:
    """How to optimise with a large (global) batch.

    Attributes:
        optimizer: ``"adam"`` (the single-process default), ``"lamb"`` or ``"larc"``.
        lr_scaling: how the learning rate grows with the batch: ``"none"``,
            ``"linear"`` or ``"sqrt"`` of ``batch_size / reference_batch_size``.
        reference_batch_size: the batch size at which the learning rate was tuned.
        warmup_steps: steps over which the learning rate ramps linearly up to its
            full value (0: no warm-up).
        weight_decay: decoupled weight decay of LAMB and LARC.
        trust_coefficient: LARC's eta, the largest step relative to the weight norm.
        momentum: LARC's SGD momentum.
    """

    optimizer: OptimizerName = "adam"
    lr_scaling: ScalingRule = "none"
    reference_batch_size: int = 64
    warmup_steps: int = 0
    weight_decay: float = 0.0
    trust_coefficient: float = 0.02
    momentum: float = 0.9

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "lamb", "larc"):
            raise ValueError(f"LargeBatchConfig.optimizer must be adam, lamb or larc, got {self.optimizer!r}")
        if self.lr_scaling not in ("none", "linear", "sqrt"):
            raise ValueError(f"LargeBatchConfig.lr_scaling must be none, linear or sqrt, got {self.lr_scaling!r}")
        if self.reference_batch_size < 1:
            raise ValueError(f"LargeBatchConfig.reference_batch_size must be positive, "
                             f"got {self.reference_batch_size}")
        if self.warmup_steps < 0:
            raise ValueError(f"LargeBatchConfig.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.weight_decay < 0 or not self.trust_coefficient > 0 or not 0 <= self.momentum < 1:
            raise ValueError(f"LargeBatchConfig: expected weight_decay >= 0, trust_coefficient > 0 and "
                             f"0 <= momentum < 1, got {self.weight_decay}, {self.trust_coefficient}, "
                             f"{self.momentum}")


def scaled_learning_rate(learning_rate: float, batch_size: int, config: LargeBatchConfig) -> float:
    """``learning_rate`` (tuned at ``config.reference_batch_size``) scaled to ``batch_size``."""
    ratio = batch_size / config.reference_batch_size
    factor = {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[config.lr_scaling]
    return learning_rate * factor


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Fraction of the full learning rate at 0-based ``step``: ``(step + 1) / warmup_steps``, then 1."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, (step + 1) / warmup_steps)


def make_optimizer(params: Iterable[torch.nn.Parameter], learning_rate: float,
                   config: LargeBatchConfig) -> torch.optim.Optimizer:
    """The optimizer ``config`` names over ``params`` (one group) at ``learning_rate``."""
    params = list(params)
    if config.optimizer == "lamb":
        return Lamb(params, lr=learning_rate, weight_decay=config.weight_decay)
    if config.optimizer == "larc":
        return Larc(params, lr=learning_rate, momentum=config.momentum, weight_decay=config.weight_decay,
                    trust_coefficient=config.trust_coefficient)
    return torch.optim.Adam(params, lr=learning_rate)


def _trust_ratio(weight_norm: torch.Tensor, update_norm: torch.Tensor) -> torch.Tensor:
    """``weight_norm / update_norm``, or 1 where either norm is zero (fresh zero weights, no gradient)."""
    usable = (weight_norm > 0) & (update_norm > 0)
    return torch.where(usable, weight_norm / update_norm.clamp_min(torch.finfo(update_norm.dtype).tiny),
                       torch.ones_like(weight_norm))


class Lamb(torch.optim.Optimizer):
    """LAMB: Adam's direction, scaled per tensor by ``||w|| / ||update||``.

    The update of each tensor is ``r = m_hat / (sqrt(v_hat) + eps) + weight_decay * w``
    and the step ``lr * (||w|| / ||r||) * r`` (the ratio taken as 1 when a norm is 0).

    Args:
        params: parameters to optimise.
        lr: base learning rate.
        betas: decay rates of the first and second moment estimates.
        eps: added to the second-moment root.
        weight_decay: decoupled weight decay, inside the trust ratio.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6, weight_decay: float = 0.0) -> None:
        if not lr > 0 or not 0 <= betas[0] < 1 or not 0 <= betas[1] < 1 or not eps > 0 or weight_decay < 0:
            raise ValueError(f"Lamb: expected lr > 0, betas in [0, 1), eps > 0, weight_decay >= 0; got "
                             f"lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - torch.optim.Optimizer.step
        loss = None if closure is None else torch.enable_grad()(closure)()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float64)
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["step"] += 1
                step = float(state["step"])
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.lerp_(param.grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(param.grad, param.grad, value=1 - beta2)
                denominator = (exp_avg_sq / (1 - beta2 ** step)).sqrt_().add_(group["eps"])
                update = (exp_avg / (1 - beta1 ** step)).div_(denominator)
                if group["weight_decay"]:
                    update.add_(param, alpha=group["weight_decay"])
                ratio = _trust_ratio(param.norm(), update.norm())
                param.sub_(update * (group["lr"] * ratio))
        return loss


class Larc(torch.optim.Optimizer):
    """SGD with momentum and LARC's clipped layer-wise rate.

    Each tensor's local rate is ``trust_coefficient * ||w|| / (||g|| + weight_decay * ||w||)``;
    the step it takes is ``min(local rate, lr)`` times its gradient (plus weight decay),
    accumulated with momentum. A tensor with a zero weight or gradient norm takes
    the plain rate ``lr``.

    Args:
        params: parameters to optimise.
        lr: base (largest) learning rate.
        momentum: heavy-ball momentum.
        weight_decay: L2 weight decay added to the gradient.
        trust_coefficient: eta, the largest step relative to the weight norm.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 0.1, momentum: float = 0.9,
                 weight_decay: float = 0.0, trust_coefficient: float = 0.02) -> None:
        if not lr > 0 or not 0 <= momentum < 1 or weight_decay < 0 or not trust_coefficient > 0:
            raise ValueError(f"Larc: expected lr > 0, 0 <= momentum < 1, weight_decay >= 0, "
                             f"trust_coefficient > 0; got lr={lr}, momentum={momentum}, "
                             f"weight_decay={weight_decay}, trust_coefficient={trust_coefficient}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      trust_coefficient=trust_coefficient))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - torch.optim.Optimizer.step
        loss = None if closure is None else torch.enable_grad()(closure)()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                weight_norm, grad_norm = param.norm(), param.grad.norm()
                local = group["trust_coefficient"] * _trust_ratio(
                    weight_norm, grad_norm + group["weight_decay"] * weight_norm)
                fallback = (weight_norm == 0) | (grad_norm == 0)
                rate = torch.where(fallback, torch.full_like(local, group["lr"]), local.clamp_max(group["lr"]))
                direction = param.grad.add(param, alpha=group["weight_decay"]) if group["weight_decay"] \
                    else param.grad.clone()
                direction.mul_(rate)
                state = self.state[param]
                if "momentum_buffer" in state:
                    direction = state["momentum_buffer"].mul_(group["momentum"]).add_(direction)
                else:
                    state["momentum_buffer"] = direction
                param.sub_(direction)
        return loss
