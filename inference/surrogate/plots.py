"""Figures comparing real and generated showers, written as PNG files (no display needed).

Figures are made with matplotlib's object interface (``matplotlib.figure.Figure``),
which needs no pyplot state and no interactive backend. Spacing is set by hand:
constrained layout took several seconds per figure of this many panels.
"""

from __future__ import annotations

import math
import os
from typing import Union

import numpy as np
from matplotlib.figure import Figure

from inference.surrogate.metrics import histogram_edges
from inference.surrogate.showers_file import ShowerData

PathLike = Union[str, os.PathLike]
REAL, GENERATED = "#1f77b4", "#d62728"


def plot_observables(real: dict[str, np.ndarray], generated: dict[str, np.ndarray], path: PathLike, *,
                     bins: int = 50, title: str = "") -> None:
    """One panel per observable: the real and generated histograms on the real sample's bins."""
    names = list(real)
    columns = 4
    rows = math.ceil(len(names) / columns)
    figure = Figure(figsize=(4 * columns, 3 * rows))
    figure.subplots_adjust(left=0.04, right=0.98, bottom=0.04, top=0.93 if title else 0.96, hspace=0.45, wspace=0.25)
    for index, name in enumerate(names):
        axes = figure.add_subplot(rows, columns, index + 1)
        edges = histogram_edges(real[name], bins)
        axes.hist(np.clip(real[name], edges[0], edges[-1]), bins=edges, histtype="stepfilled", alpha=0.35,
                  color=REAL, density=True, label="real")
        axes.hist(np.clip(generated[name], edges[0], edges[-1]), bins=edges, histtype="step", linewidth=1.5,
                  color=GENERATED, density=True, label="generated")
        axes.set_title(name, fontsize=9)
        axes.tick_params(labelsize=7)
        if index == 0:
            axes.legend(fontsize=7)
    if title:
        figure.suptitle(title)
    figure.savefig(os.fspath(path), dpi=90)


def plot_mean_showers(real: ShowerData, generated: ShowerData, path: PathLike) -> None:
    """The average shower of each layer, real above generated, on one log colour scale per layer."""
    geometry = real.geometry
    figure = Figure(figsize=(5 * geometry.num_layers, 7))
    figure.subplots_adjust(left=0.05, right=0.97, bottom=0.08, top=0.95, hspace=0.4, wspace=0.35)
    for layer, (real_mean, generated_mean) in enumerate(zip(geometry.split(real.showers.mean(axis=0, keepdims=True)),
                                                            geometry.split(generated.showers.mean(axis=0,
                                                                                                  keepdims=True)))):
        positive = np.concatenate([real_mean.ravel(), generated_mean.ravel()])
        positive = positive[positive > 0]
        low, high = (positive.min(), positive.max()) if positive.size else (1e-6, 1.0)
        for row, (label, image) in enumerate((("real", real_mean[0]), ("generated", generated_mean[0]))):
            axes = figure.add_subplot(2, geometry.num_layers, row * geometry.num_layers + layer + 1)
            shown = axes.imshow(np.log10(np.clip(image, low, None)), aspect="auto", vmin=np.log10(low),
                                vmax=np.log10(high), cmap="viridis", interpolation="nearest")
            axes.set_title(f"{label}, layer {layer}", fontsize=9)
            axes.set_xlabel("eta cell", fontsize=7)
            axes.set_ylabel("phi cell", fontsize=7)
            axes.tick_params(labelsize=7)
            bar = figure.colorbar(shown, ax=axes)
            bar.set_label(f"log10 mean energy [{real.energy_unit}]", fontsize=7)
            bar.ax.tick_params(labelsize=7)
    figure.savefig(os.fspath(path), dpi=90)


def plot_response_by_kind(real: ShowerData, generated: ShowerData, real_response: np.ndarray,
                          generated_response: np.ndarray, path: PathLike, *, bins: int = 50) -> None:
    """Total deposited energy over incident energy, one panel per particle kind."""
    kinds = [kind for kind in range(len(real.kind_names)) if np.any(real.kinds == kind)]
    figure = Figure(figsize=(4 * max(len(kinds), 1), 3.2))
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.1, top=0.9, wspace=0.25)
    for index, kind in enumerate(kinds):
        axes = figure.add_subplot(1, len(kinds), index + 1)
        real_values = real_response[real.kinds == kind]
        generated_values = generated_response[generated.kinds == kind]
        edges = histogram_edges(real_values, bins)
        axes.hist(np.clip(real_values, edges[0], edges[-1]), bins=edges, histtype="stepfilled", alpha=0.35,
                  color=REAL, density=True, label="real")
        if generated_values.size:
            axes.hist(np.clip(generated_values, edges[0], edges[-1]), bins=edges, histtype="step",
                      linewidth=1.5, color=GENERATED, density=True, label="generated")
        axes.set_title(f"{real.kind_names[kind]}: E / E_inc", fontsize=9)
        axes.legend(fontsize=7)
    figure.savefig(os.fspath(path), dpi=90)
