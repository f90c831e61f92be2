"""Shower-shape observables of hand-made showers whose values are known."""

from __future__ import annotations

import numpy as np
import pytest

from inference.surrogate.geometry import CALOGAN, Geometry
from inference.surrogate.observables import observable_names, shower_observables


def empty(count: int = 1) -> list[np.ndarray]:
    return [np.zeros((count, *shape)) for shape in CALOGAN.layer_shapes]


def test_all_energy_in_one_cell_of_the_middle_layer():
    layers = empty()
    layers[1][0, 5, 7] = 10.0
    observed = shower_observables(CALOGAN.flatten(layers), [20.0])
    assert list(observed) == observable_names()
    expected = {"energy_0": 0.0, "energy_1": 10.0, "energy_2": 0.0, "fraction_0": 0.0, "fraction_1": 1.0,
                "fraction_2": 0.0, "total_energy": 10.0, "response": 0.5, "depth": 1.0, "depth_width": 0.0,
                "width_x_0": 0.0, "width_x_1": 0.0, "width_x_2": 0.0, "width_y_0": 0.0, "width_y_1": 0.0,
                "width_y_2": 0.0, "sparsity_0": 0.0, "sparsity_1": 1 / 144, "sparsity_2": 0.0}
    for name, value in expected.items():
        assert observed[name][0] == pytest.approx(value, abs=1e-12), name


def test_two_neighbouring_cells_of_the_front_layer_are_half_a_cell_wide():
    layers = empty()
    layers[0][0, 1, 40:42] = 3.0  # front cells are 5 mm along eta (columns), 160 mm along phi (rows)
    observed = shower_observables(CALOGAN.flatten(layers), [60.0])
    assert observed["width_x_0"][0] == pytest.approx(2.5)
    assert observed["width_y_0"][0] == pytest.approx(0.0, abs=1e-9)
    assert observed["depth"][0] == 0.0 and observed["response"][0] == pytest.approx(0.1)
    assert observed["sparsity_0"][0] == pytest.approx(2 / 288)


def test_energy_split_between_front_and_back_layers():
    layers = empty()
    layers[0][0, 0, 0] = 1.0
    layers[2][0, 11, 5] = 1.0
    observed = shower_observables(CALOGAN.flatten(layers), [4.0])
    assert observed["depth"][0] == pytest.approx(1.0)
    assert observed["depth_width"][0] == pytest.approx(1.0)
    assert observed["fraction_0"][0] == observed["fraction_2"][0] == pytest.approx(0.5)


def test_empty_and_noisy_showers_give_finite_values():
    layers = empty(2)
    rng = np.random.default_rng(0)
    noisy = CALOGAN.flatten(layers)
    noisy[1] = rng.normal(0.0, 1e-3, CALOGAN.num_cells)  # negative cells: spreads must stay real
    observed = shower_observables(noisy, [10.0, 10.0], threshold=0.0)
    for name, values in observed.items():
        assert np.all(np.isfinite(values)), name
        assert values[0] == 0.0, name


def test_observables_follow_the_geometry():
    geometry = Geometry(((2, 2), (1, 4)), (4.0, 4.0))
    showers = np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0]])
    observed = shower_observables(showers, [8.0], geometry)
    assert observed["width_x_0"][0] == pytest.approx(1.0)  # cells at x = -1 and +1 mm
    assert observed["width_y_0"][0] == pytest.approx(1.0)
    assert observed["fraction_1"][0] == pytest.approx(0.5)
    assert observed["response"][0] == pytest.approx(0.5)


def test_shape_errors_name_the_geometry():
    with pytest.raises(ValueError, match="504"):
        shower_observables(np.zeros((3, 500)), np.ones(3))
    with pytest.raises(ValueError, match="incident energy"):
        shower_observables(np.zeros((3, 504)), np.ones(2))
