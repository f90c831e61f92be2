"""The HDF5 shower files: community layout, round trip, atomic writes, foreign files."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from inference.surrogate.geometry import CALOGAN
from inference.surrogate.showers_file import ShowerData, ShowerWriter, read_showers, write_showers
from tests.surrogate.blobs import blob_showers


def test_round_trip_in_the_community_layout(tmp_path):
    data = blob_showers(50)
    path = tmp_path / "showers.h5"
    write_showers(path, data)
    with h5py.File(path, "r") as file:
        assert file["incident_energies"].shape == (50, 1)
        assert file["showers"].shape == (50, 504) and file["showers"].dtype == np.float32
        assert file["particle_kind"].shape == (50, 1)
        assert file.attrs["format"] == "ppx-showers" and file.attrs["energy_unit"] == "GeV"
    back = read_showers(path)
    np.testing.assert_array_equal(back.kinds, data.kinds)
    np.testing.assert_array_equal(back.energies, data.energies)
    np.testing.assert_array_equal(back.showers, data.showers)
    assert back.geometry == CALOGAN and back.kind_names == data.kind_names and back.source == "blobs"
    part = read_showers(path, 10, 20)
    np.testing.assert_array_equal(part.showers, data.showers[10:20])


def test_chunks_append(tmp_path):
    data = blob_showers(30)
    path = tmp_path / "chunks.h5"
    with ShowerWriter(path, kind_names=data.kind_names) as writer:
        for start in range(0, 30, 7):
            writer.write(data.kinds[start:start + 7], data.energies[start:start + 7], data.showers[start:start + 7])
        assert writer.num_showers == 30
    np.testing.assert_array_equal(read_showers(path).showers, data.showers)


def test_a_failed_write_leaves_no_file_and_an_old_file_untouched(tmp_path):
    data = blob_showers(10)
    path = tmp_path / "showers.h5"
    with pytest.raises(RuntimeError):
        with ShowerWriter(path, kind_names=data.kind_names) as writer:
            writer.write(data.kinds, data.energies, data.showers)
            raise RuntimeError("simulator died")
    assert os.listdir(tmp_path) == []
    write_showers(path, data.subset(slice(0, 4)))
    with pytest.raises(ValueError, match="kinds must lie"):
        with ShowerWriter(path, kind_names=("electron",)) as writer:
            writer.write(data.kinds, data.energies, data.showers)
    assert os.listdir(tmp_path) == ["showers.h5"] and len(read_showers(path)) == 4


def test_a_challenge_style_file_reads_as_calogan(tmp_path):
    path = tmp_path / "challenge.h5"
    with h5py.File(path, "w") as file:
        file["incident_energies"] = np.full((3, 1), 1000.0)
        file["showers"] = np.ones((3, 504))
    data = read_showers(path)
    assert data.geometry == CALOGAN and data.kind_names == ("kind0",) and data.energy_unit == "MeV"


def test_unreadable_layouts_are_named(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as file:
        file["something"] = np.zeros(3)
    with pytest.raises(ValueError, match="no dataset incident_energies, showers"):
        read_showers(path)
    with pytest.raises(ValueError, match=r"\(N, 504\)"):
        ShowerData(np.zeros(2), np.ones(2), np.zeros((2, 500)))
