"""The response model: how much of the incident energy a shower shows, given the particle kind and energy.

The total visible energy over the incident energy, ``R = E / E_inc``, is the
observable a calorimeter is calibrated on, and the one a GAN reproduces worst
(its narrow electromagnetic peak). The surrogate therefore does not learn it
adversarially: it draws ``R`` from this model, fitted to the recorded showers,
and the generator only spreads ``R * E_inc`` over layers and cells.

For each particle kind the model is a location and a scale that vary smoothly
with log energy (least-squares polynomials: the mean response, and the typical
size ``exp(mean log |R - mean|)`` of the deviation from it), and the shape of
the standardised residual ``(R - location) / scale`` as quantiles in a few
log-energy bins of equal counts. Drawing ``R`` for a uniform ``u`` reads the
residual's quantile ``u`` of the two bins around the energy, interpolates
between them in log energy, and undoes the standardisation. The location and
scale carry the fast energy dependence (an electron's peak narrows as
``1/sqrt(E)``), so the coarse bins need only carry the slowly varying shape.
Everything is kept in buffers, so the model travels in a checkpoint's state dict.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

DEGREE = 2
"""Degree of the location and scale polynomials in standardised log energy."""
BINS = 24
"""Log-energy bins of the residual quantiles, per kind (fewer when there are few showers)."""
LEVELS = 129
"""Quantile levels per bin, evenly spaced over [0, 1]."""
MIN_PER_BIN = 200
"""A bin holds at least this many showers (or all of a kind's showers, if fewer)."""


class ResponseModel(nn.Module):
    """Draws responses ``E / E_inc`` for particle kinds and incident energies.

    Build it with ``ResponseModel.fit`` (from showers) or ``ResponseModel.from_state``
    (from a checkpoint); the constructor makes an empty model of the given sizes.

    Args:
        num_kinds: particle kinds.
        degree: degree of the location and scale polynomials.
        bins: log-energy bins of the residual quantiles.
        levels: quantile levels per bin.
    """

    def __init__(self, num_kinds: int, degree: int = DEGREE, bins: int = BINS, levels: int = LEVELS) -> None:
        super().__init__()
        for name, value, least in (("num_kinds", num_kinds, 1), ("degree", degree, 0), ("bins", bins, 1),
                                   ("levels", levels, 2)):
            if value < least:
                raise ValueError(f"{name} must be at least {least}, got {value}")
        self.register_buffer("log_energy_mean", torch.tensor(0.0))
        self.register_buffer("log_energy_std", torch.tensor(1.0))
        self.register_buffer("location", torch.zeros(num_kinds, degree + 1))
        self.register_buffer("log_scale", torch.zeros(num_kinds, degree + 1))
        self.register_buffer("bin_centers", torch.zeros(num_kinds, bins))
        self.register_buffer("quantiles", torch.zeros(num_kinds, bins, levels))

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> "ResponseModel":
        """The model whose ``state_dict()`` is ``state`` (its sizes are read from the tensors)."""
        try:
            num_kinds, bins, levels = state["quantiles"].shape
            degree = state["location"].shape[1] - 1
        except (KeyError, ValueError, IndexError, AttributeError) as err:
            raise ValueError(f"not a response model state: {sorted(state)}") from err
        model = cls(num_kinds, degree, bins, levels)
        model.load_state_dict(state)
        return model

    @classmethod
    def fit(cls, kinds: np.ndarray, energies: np.ndarray, responses: np.ndarray, num_kinds: int, *,
            degree: int = DEGREE, bins: int = BINS, levels: int = LEVELS) -> "ResponseModel":
        """Fit the model to showers.

        Args:
            kinds: (N,) particle kind indices.
            energies: (N,) positive incident energies.
            responses: (N,) total visible energy over incident energy.
            num_kinds: particle kinds; a kind without showers borrows the fit to all showers.
            degree, bins, levels: as in the constructor (upper limits for the
                degree and the bins, lowered for kinds with few showers).

        Raises:
            ValueError: arrays of different lengths, too few showers, or energies not positive.
        """
        kinds = np.asarray(kinds).reshape(-1).astype(np.int64)
        energies = np.asarray(energies, dtype=np.float64).reshape(-1)
        responses = np.asarray(responses, dtype=np.float64).reshape(-1)
        if not len(kinds) == len(energies) == len(responses):
            raise ValueError(f"kinds, energies and responses differ in length: "
                             f"{len(kinds)}, {len(energies)}, {len(responses)}")
        if len(kinds) < 2:
            raise ValueError(f"need at least 2 showers to fit a response model, got {len(kinds)}")
        if not np.all(energies > 0):
            raise ValueError("incident energies must be positive")
        if not np.all(np.isfinite(responses)):
            raise ValueError("responses must be finite")
        log_energy = np.log(energies)
        mean, std = float(log_energy.mean()), float(log_energy.std()) or 1.0
        x = (log_energy - mean) / std
        counts = np.bincount(kinds, minlength=num_kinds)
        present = counts[counts > 0]
        bins = int(max(1, min(bins, present.min() // MIN_PER_BIN)))
        model = cls(num_kinds, degree, bins, levels)
        model.log_energy_mean.fill_(mean)
        model.log_energy_std.fill_(std)
        for kind in range(num_kinds):
            mask = kinds == kind
            if not mask.any():
                log.warning("no showers of kind %d: its response model is fitted to all kinds", kind)
                mask = np.ones_like(mask)
            location, log_scale, centers, quantiles = _fit_kind(x[mask], responses[mask], degree, bins, levels)
            model.location[kind] = torch.from_numpy(location)
            model.log_scale[kind] = torch.from_numpy(log_scale)
            model.bin_centers[kind] = torch.from_numpy(centers)
            model.quantiles[kind] = torch.from_numpy(quantiles)
        return model

    @property
    def num_kinds(self) -> int:
        return self.quantiles.shape[0]

    def forward(self, kinds: torch.Tensor, energies: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
        """The response at quantile ``uniforms`` (N,) in [0, 1] for (N,) kinds and positive energies."""
        kinds = kinds.long()
        x = (torch.log(energies) - self.log_energy_mean) / self.log_energy_std
        location = _polynomial(self.location[kinds], x)
        scale = torch.exp(_polynomial(self.log_scale[kinds], x))
        return location + scale * self._residual(kinds, x, uniforms)

    def _residual(self, kinds: torch.Tensor, x: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
        """The standardised residual's quantile ``uniforms`` at standardised log energies ``x``.

        Reads the two neighbouring levels in the two bins around ``x`` (flat
        beyond the outer bins' centres) straight from the flattened table, so
        no shower copies a whole table.
        """
        _, bins, levels = self.quantiles.shape
        position = uniforms.clamp(0.0, 1.0) * (levels - 1)
        level = position.floor().clamp(max=levels - 2).long()
        level_weight = position - level
        table = self.quantiles.view(-1)
        start = kinds * (bins * levels) + level

        def at_bin(index: torch.Tensor) -> torch.Tensor:
            first = start + index * levels
            return torch.lerp(table[first], table[first + 1], level_weight)

        if bins == 1:
            return at_bin(torch.zeros_like(kinds))
        centers = self.bin_centers[kinds]
        upper = torch.searchsorted(centers, x.unsqueeze(1)).squeeze(1).clamp(1, bins - 1)
        lower = upper - 1
        left, right = centers.gather(1, lower.unsqueeze(1)).squeeze(1), centers.gather(1, upper.unsqueeze(1)).squeeze(1)
        weight = ((x - left) / (right - left).clamp_min(1e-12)).clamp(0.0, 1.0)
        return torch.lerp(at_bin(lower), at_bin(upper), weight)

    def sample(self, kinds: torch.Tensor, energies: torch.Tensor,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Random responses and the uniforms they were drawn at, each (N,)."""
        uniforms = torch.rand(len(kinds), generator=generator, dtype=energies.dtype)
        return self(kinds, energies, uniforms), uniforms


def _fit_kind(x: np.ndarray, responses: np.ndarray, degree: int, bins: int,
              levels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Location and log-scale coefficients (degree + 1), bin centres (bins) and residual quantiles
    (bins, levels) of one kind's showers at standardised log energies ``x``."""
    usable = min(degree, len(np.unique(x)) - 1)  # no higher than the distinct energies allow
    location = _least_squares(x, responses, usable)
    deviation = responses - np.polynomial.polynomial.polyval(x, location)
    # log |deviation| is -inf where a response sits exactly on the curve; the floor keeps it finite.
    floor = 1e-6 * max(float(np.abs(deviation).max()), 1e-30)
    log_scale = _least_squares(x, np.log(np.abs(deviation) + floor), usable)
    residual = deviation / np.exp(np.polynomial.polynomial.polyval(x, log_scale))
    parts = np.array_split(np.argsort(x, kind="stable"), bins)
    centers = np.array([np.median(x[part]) for part in parts])
    quantiles = np.stack([np.quantile(residual[part], np.linspace(0.0, 1.0, levels)) for part in parts])
    padding = (0, degree - usable)
    return np.pad(location, padding), np.pad(log_scale, padding), centers, quantiles


def _least_squares(x: np.ndarray, y: np.ndarray, degree: int) -> np.ndarray:
    """Coefficients, lowest power first, of the least-squares polynomial of ``degree`` through (x, y)."""
    coefficients, *_ = np.linalg.lstsq(np.vander(x, degree + 1, increasing=True), y, rcond=None)
    return coefficients


def _polynomial(coefficients: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Row-wise polynomials (N, degree + 1), lowest power first, at (N,) points (Horner's rule)."""
    value = coefficients[:, -1]
    for power in range(coefficients.shape[1] - 2, -1, -1):
        value = torch.addcmul(coefficients[:, power], value, x)
    return value
