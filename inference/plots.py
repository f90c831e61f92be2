"""Plots people would rather look at than read: posteriors, channel probabilities, images, losses.

Every function writes one PNG and returns its path; matplotlib's Agg backend is
used so that no display is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def posterior_histograms(posteriors: Mapping[str, Any], variables: Sequence[str],
                         truth: Mapping[str, float], path: str | Path, bins: int = 30) -> Path:
    """Weighted histograms of each variable, one panel per variable, truth marked."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(variables), figsize=(4 * len(variables), 3.2), squeeze=False)
    for axis, variable in zip(axes[0], variables):
        for label, posterior in posteriors.items():
            values = np.asarray(posterior.values(variable), dtype=float).reshape(len(posterior.values(variable)), -1)[:, 0]
            axis.hist(values, bins=bins, weights=posterior.weights(variable), density=True, histtype="step",
                      linewidth=1.5, label=f"{label} (ESS {posterior.variable_ess(variable).ravel()[0]:.0f})")
        if variable in truth:
            axis.axvline(truth[variable], color="black", linestyle="--", label="truth")
        axis.set_xlabel(variable)
        axis.legend(fontsize=7)
    axes[0][0].set_ylabel("posterior density")
    figure.tight_layout()
    return _save(figure, path)


def category_probabilities(posteriors: Mapping[str, Any], variable: str, labels: Sequence[str],
                           truth: Optional[int], path: str | Path) -> Path:
    """Bar chart of a categorical variable's posterior probabilities per engine, truth marked."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(max(6, 0.9 * len(labels)), 3.5))
    width = 0.8 / max(1, len(posteriors))
    positions = np.arange(len(labels))
    for i, (label, posterior) in enumerate(posteriors.items()):
        probabilities = posterior.probabilities(variable)
        heights = [probabilities.get(k, 0.0) for k in range(len(labels))]
        axis.bar(positions + i * width, heights, width=width, label=label)
    if truth is not None:
        axis.axvline(truth + width * (len(posteriors) - 1) / 2, color="black", linestyle="--", label="truth")
    axis.set_xticks(positions + width * (len(posteriors) - 1) / 2)
    axis.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    axis.set_ylabel(f"P({variable} | observation)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def image_comparison(images: Mapping[str, np.ndarray], path: str | Path, axis_names=("phi", "eta")) -> Path:
    """Side-by-side 2D images (3D volumes are summed over their last axis), on one colour scale."""
    plt = _pyplot()
    flat = {label: image.sum(axis=-1) if image.ndim == 3 else image for label, image in images.items()}
    top = max(float(np.max(image)) for image in flat.values()) or 1.0
    figure, axes = plt.subplots(1, len(flat), figsize=(4 * len(flat), 3.6), squeeze=False)
    for axis, (label, image) in zip(axes[0], flat.items()):
        shown = axis.imshow(image, origin="lower", vmin=0, vmax=top, cmap="viridis")
        axis.set_title(label, fontsize=9)
        axis.set_xlabel(axis_names[1])
    axes[0][0].set_ylabel(axis_names[0])
    figure.colorbar(shown, ax=axes[0].tolist(), label="deposited energy (GeV)")
    return _save(figure, path)


def loss_curve(progress: Mapping[str, Any], path: str | Path) -> Path:
    """Training and validation loss against traces seen."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.5))
    if progress.get("loss"):
        traces, losses = zip(*progress["loss"])
        axis.plot(traces, losses, alpha=0.5, label="training batch")
    if progress.get("validation"):
        traces, losses = zip(*progress["validation"])
        axis.plot(traces, losses, marker="o", label="validation")
    axis.set_xlabel("traces")
    axis.set_ylabel("loss  (-log q per trace)")
    axis.legend()
    figure.tight_layout()
    return _save(figure, path)


def calibration(mass_below_truth: Mapping[str, Sequence[float]], path: str | Path) -> Path:
    """Where the truth falls in each engine's posteriors, over many events.

    ``mass_below_truth`` holds, per engine, the posterior probability below the true value
    for each event (and variable). A calibrated engine gives uniformly distributed values,
    so their empirical CDF follows the diagonal within the shaded band (95%, pointwise, for
    as many values); an engine too sure of itself piles them up at 0 and 1.
    """
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(4.6, 4.2))
    grid = np.linspace(0.0, 1.0, 201)
    count = max((len(values) for values in mass_below_truth.values()), default=1)
    spread = 1.96 * np.sqrt(grid * (1.0 - grid) / count)
    axis.fill_between(grid, grid - spread, grid + spread, color="0.85", label=f"calibrated, {count} values")
    axis.plot(grid, grid, color="0.5", linewidth=1)
    for label, values in mass_below_truth.items():
        ordered = np.sort(np.asarray(values, dtype=float))
        axis.step(np.concatenate([[0.0], ordered, [1.0]]), np.concatenate([[0.0], np.arange(1, len(ordered) + 1)
                  / len(ordered), [1.0]]), where="post", linewidth=1.5, label=f"{label} ({len(ordered)})")
    axis.set_xlabel("posterior probability below the truth")
    axis.set_ylabel("cumulative fraction")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    return _save(figure, path)


def gap_against_runs(runs: Sequence[int], gaps: Mapping[str, Sequence[Sequence[float]]], path: str | Path) -> Path:
    """How far below the true trace's log p(x, y) each engine's best trace lies as its runs grow:
    ``gaps`` holds per engine one curve per event (a value per entry of ``runs``), drawn thin in
    the engine's colour; zero is where the posterior's typical traces are."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.2, 3.6))
    for (label, curves), colour in zip(gaps.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        for index, curve in enumerate(curves):
            axis.plot(runs, curve, marker="o", markersize=3, linewidth=1, color=colour,
                      label=f"{label} ({len(curves)} events)" if index == 0 else None)
    axis.axhline(0.0, color="black", linestyle="--", linewidth=1, label="the truth's log p(x, y)")
    axis.set_xscale("log")
    axis.set_xticks(list(runs), [f"{count:,}" for count in runs])
    axis.xaxis.set_minor_locator(plt.NullLocator())
    axis.set_yscale("symlog", linthresh=10.0)
    axis.set_xlabel("simulator runs")
    axis.set_ylabel("best trace below the truth (nats)")
    axis.legend(fontsize=7)
    figure.tight_layout()
    return _save(figure, path)


def _save(figure: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    _pyplot().close(figure)
    return path
