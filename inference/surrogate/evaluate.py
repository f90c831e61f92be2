"""Fidelity of generated showers against real ones: observables, distances, classifier AUC, plots.

For every shower-shape observable (see ``observables``) the table gives the KS
distance and the separation power between real and generated showers, and,
as the noise floor to read them against, the same between two random halves
of the real showers (smaller samples, so a floor on the high side). The
response (total energy over incident energy) is also compared per particle
kind. Two classifier two-sample tests follow: on the cells (each cell's energy
over the incident energy, the calorimeter challenge's low-level test) and on
the observables (high-level).

Example:
    >>> real = read_showers("test.h5")                                      # doctest: +SKIP
    >>> generated = Surrogate.load("surrogate.pt").sample_like(real)        # doctest: +SKIP
    >>> report = evaluate(real, generated, out_dir="plots")                 # doctest: +SKIP
    >>> print(report.table())                                               # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from typing import Any, Optional, Union

import numpy as np

from inference.surrogate.classifier import ClassifierResult, classifier_auc
from inference.surrogate.features import cell_features, observable_features
from inference.surrogate.metrics import histogram_edges, ks_distance, separation_power
from inference.surrogate.observables import shower_observables
from inference.surrogate.plots import plot_mean_showers, plot_observables, plot_response_by_kind
from inference.surrogate.showers_file import ShowerData

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class ObservableRow:
    """Distances for one observable; the ``reference_`` ones compare two halves of the real showers."""

    name: str
    ks: float
    separation_power: float
    reference_ks: float
    reference_separation_power: float


@dataclass(frozen=True)
class Evaluation:
    """The outcome of ``evaluate``.

    Attributes:
        rows: one per observable, then the response per particle kind.
        cell_classifier: classifier test on the cells, or None if skipped.
        observable_classifier: classifier test on the observables, or None if skipped.
        num_real: real showers compared.
        num_generated: generated showers compared.
        plots: the figures written.
    """

    rows: list[ObservableRow]
    cell_classifier: Optional[ClassifierResult]
    observable_classifier: Optional[ClassifierResult]
    num_real: int
    num_generated: int
    plots: list[str]

    def row(self, name: str) -> ObservableRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no observable {name!r}; have {[row.name for row in self.rows]}")

    @property
    def mean_ks(self) -> float:
        return float(np.mean([row.ks for row in self.rows]))

    def summary(self) -> dict[str, Any]:
        """Everything as plain numbers, for JSON."""
        out: dict[str, Any] = {
            "num_real": self.num_real, "num_generated": self.num_generated, "mean_ks": self.mean_ks,
            "observables": {row.name: {k: v for k, v in asdict(row).items() if k != "name"} for row in self.rows},
            "plots": list(self.plots)}
        for key in ("cell_classifier", "observable_classifier"):
            result = getattr(self, key)
            out[key] = None if result is None else asdict(result)
        return out

    def table(self) -> str:
        """The fidelity table as text."""
        width = max(len(row.name) for row in self.rows)
        lines = [f"{'observable':<{width}}  {'KS':>7}  {'sep. power':>10}  {'KS real/real':>12}  "
                 f"{'sep. real/real':>14}"]
        for row in self.rows:
            lines.append(f"{row.name:<{width}}  {row.ks:7.4f}  {row.separation_power:10.2e}  "
                         f"{row.reference_ks:12.4f}  {row.reference_separation_power:14.2e}")
        lines.append(f"mean KS {self.mean_ks:.4f} over {len(self.rows)} rows; {self.num_real} real, "
                     f"{self.num_generated} generated showers; real/real compares two halves of the real ones")
        for label, result in (("cells", self.cell_classifier), ("observables", self.observable_classifier)):
            if result is not None:
                lines.append(f"classifier AUC on {label}: {result.auc:.4f} (0.5 = indistinguishable; "
                             f"+/- {result.standard_error:.4f} by chance, {result.num_test} test showers)")
        if self.plots:
            lines.append(f"plots: {', '.join(self.plots)}")
        return "\n".join(lines)


def evaluate(real: ShowerData, generated: ShowerData, *, out_dir: Optional[PathLike] = None, bins: int = 50,
             threshold: float = 0.0, classifier: bool = True, seed: int = 0,
             **classifier_settings: Any) -> Evaluation:
    """Compare generated showers with real ones.

    Args:
        real: the reference showers.
        generated: showers to judge, ideally for the same conditions.
        out_dir: where to write the plots (created if missing); None for no plots.
        bins: histogram bins for the separation power and the plots.
        threshold: cell energy counted as occupied by the sparsity observables.
        classifier: run the two classifier tests.
        seed: seeds the real/real split and the classifiers.
        **classifier_settings: ``ClassifierConfig`` fields for both classifiers (epochs, hidden, ...).

    Raises:
        ValueError: the two sets differ in geometry or particle kinds, or are too small.
    """
    if real.geometry != generated.geometry:
        raise ValueError(f"real and generated showers differ in geometry: {real.geometry} vs {generated.geometry}")
    if real.kind_names != generated.kind_names:
        raise ValueError(f"real and generated showers name different particle kinds: {real.kind_names} vs "
                         f"{generated.kind_names}")
    if len(real) < 4 or len(generated) < 2:
        raise ValueError(f"too few showers to compare: {len(real)} real, {len(generated)} generated")
    real_obs = shower_observables(real.showers, real.energies, real.geometry, threshold=threshold)
    generated_obs = shower_observables(generated.showers, generated.energies, generated.geometry, threshold=threshold)
    halves = np.random.default_rng(seed).permutation(len(real))
    first, second = halves[:len(real) // 2], halves[len(real) // 2:]
    rows = [_row(name, real_obs[name], generated_obs[name], first, second, bins) for name in real_obs]
    for kind, kind_name in enumerate(real.kind_names):
        real_mask, generated_mask = real.kinds == kind, generated.kinds == kind
        if real_mask.sum() >= 4 and generated_mask.any() and len(real.kind_names) > 1:
            kind_first, kind_second = halves[real_mask[halves]][::2], halves[real_mask[halves]][1::2]
            rows.append(_row(f"response[{kind_name}]", real_obs["response"][real_mask],
                             generated_obs["response"][generated_mask], None, None, bins,
                             reference=(real_obs["response"][kind_first], real_obs["response"][kind_second])))
    cells = observables = None
    if classifier:
        settings = {"seed": seed, **classifier_settings}
        cells = classifier_auc(cell_features(real), cell_features(generated), **settings)
        observables = classifier_auc(observable_features(real, threshold), observable_features(generated, threshold),
                                     **settings)
    plots = []
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        plots = [os.path.join(os.fspath(out_dir), name)
                 for name in ("observables.png", "mean_showers.png", "response_by_kind.png")]
        plot_observables(real_obs, generated_obs, plots[0], bins=bins)
        plot_mean_showers(real, generated, plots[1])
        plot_response_by_kind(real, generated, real_obs["response"], generated_obs["response"], plots[2], bins=bins)
    evaluation = Evaluation(rows, cells, observables, len(real), len(generated), plots)
    log.info("mean KS %.4f over %d observables", evaluation.mean_ks, len(rows))
    return evaluation


def _row(name: str, real: np.ndarray, generated: np.ndarray, first: Optional[np.ndarray],
         second: Optional[np.ndarray], bins: int,
         reference: Optional[tuple[np.ndarray, np.ndarray]] = None) -> ObservableRow:
    if reference is None:
        reference = (real[first], real[second])
    edges = histogram_edges(real, bins)
    return ObservableRow(name, ks_distance(real, generated), separation_power(real, generated, edges),
                         ks_distance(*reference), separation_power(reference[0], reference[1], edges))
