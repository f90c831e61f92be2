"""The plots write PNG images a viewer opens, of the size asked for."""

from __future__ import annotations

import matplotlib.image
import numpy as np

from inference import plots


def test_calibration_plot_writes_an_image(tmp_path):
    rng = np.random.default_rng(0)
    path = plots.calibration({"calibrated": rng.uniform(size=30), "overconfident": rng.choice([0.0, 1.0], 30)},
                             tmp_path / "figures" / "calibration.png")
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (round(4.2 * 110), round(4.6 * 110))
    assert image[..., :3].std() > 0.05, "the figure is blank"


def test_gap_plot_writes_an_image(tmp_path):
    path = plots.gap_against_runs([250, 500, 1000], {"IC IS": [[40.0, 31.0, 25.0], [-3.0, -5.0, -9.0]],
                                                     "prior IS": [[300.0, 280.0, 270.0]]}, tmp_path / "gaps.png")
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (round(3.6 * 110), round(5.2 * 110))
    assert image[..., :3].std() > 0.05, "the figure is blank"
