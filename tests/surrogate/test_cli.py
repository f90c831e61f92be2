"""``ppx surrogate record|train|sample|evaluate`` run as a user runs them: separate processes, real stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from inference.cli import main
from inference.surrogate.showers_file import read_showers, write_showers
from tests.surrogate.blobs import blob_showers

TINY = ["--batch-size", "32", "--latent-dim", "8", "--generator-hidden", "32", "--critic-hidden", "32",
        "--critic-steps", "2"]


def ppx(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inference", "surrogate", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_record_train_sample_evaluate(tmp_path):
    showers, checkpoint, generated, plots = (tmp_path / "showers.h5", tmp_path / "surrogate.pt",
                                             tmp_path / "generated.h5", tmp_path / "plots")
    run = ppx("record", "--model", "simulators.calorimeter:model", "-n", "200", "--out", str(showers),
              "--seed", "1", "--json", "--quiet")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["showers"] == 200
    real = read_showers(showers)
    assert len(real) == 200 and real.kind_names == ("electron", "photon", "pion")
    assert set(np.unique(real.kinds)) <= {0, 1, 2} and np.all((real.energies >= 1) & (real.energies <= 100))
    electrons = real.kinds == 0
    # The stage's electrons deposit about the sampling fraction 0.18 of their energy in the argon.
    assert abs(np.median(real.showers[electrons].sum(axis=1) / real.energies[electrons]) - 0.18) < 0.02

    run = ppx("train", "--data", str(showers), "--out", str(checkpoint), "--epochs", "2", *TINY, "--json", "--quiet")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["epochs"] == 2 and len(summary["history"]) == 2 and summary["best_epoch"] in (1, 2)
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 2

    run = ppx("sample", "--surrogate", str(checkpoint), "--conditions", str(showers), "--out", str(generated),
              "--seed", "2", "--json", "--quiet")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["showers"] == 200
    fake = read_showers(generated)
    np.testing.assert_array_equal(fake.kinds, real.kinds)
    np.testing.assert_array_equal(fake.energies, real.energies)
    assert fake.showers.shape == (200, 504) and np.all(np.isfinite(fake.showers)) and fake.source == "surrogate"

    run = ppx("evaluate", "--real", str(showers), "--generated", str(generated), "--out", str(plots),
              "--classifier-epochs", "2", "--json", "--quiet")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["num_real"] == report["num_generated"] == 200
    assert {"response", "depth", "width_x_1", "sparsity_2", "response[pion]"} <= set(report["observables"])
    assert 0.0 <= report["cell_classifier"]["auc"] <= 1.0 and 0.0 <= report["observable_classifier"]["auc"] <= 1.0
    assert sorted(os.listdir(plots)) == ["mean_showers.png", "observables.png", "response_by_kind.png"]


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "missing.h5"], "missing.h5"),
    (["record", "--model", "simulators.calorimeter:model", "-n", "5"], "--out PATH is required"),
    (["sample", "--surrogate", "missing.pt"], "missing.pt"),
    (["evaluate", "--real", "missing.h5", "--generated", "other.h5"], "missing.h5"),
])
def test_errors_are_one_clear_line(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["surrogate", *args]) == 2
    error = capsys.readouterr().err
    assert error.startswith("ppx surrogate: error:") and message in error and "Traceback" not in error


def test_train_resumes_and_sample_draws_chosen_conditions_in_process(tmp_path, capsys, one_thread):
    data, checkpoint, out = tmp_path / "blobs.h5", tmp_path / "surrogate.pt", tmp_path / "photons.h5"
    write_showers(data, blob_showers(120))
    assert main(["surrogate", "train", "--data", str(data), "--out", str(checkpoint), "--epochs", "1", *TINY,
                 "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epochs"] == 1
    assert main(["surrogate", "train", "--data", str(data), "--out", str(checkpoint), "--epochs", "2", "--resume",
                 "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 2 and [record["epoch"] for record in summary["history"]] == [1, 2]
    assert main(["surrogate", "sample", "--surrogate", str(checkpoint), "-n", "40", "--kind", "photon",
                 "--energy", "5", "20", "--seed", "1", "--out", str(out), "--quiet"]) == 0
    assert "40 showers" in capsys.readouterr().out
    photons = read_showers(out)
    assert np.all(photons.kinds == 1) and np.all((photons.energies >= 5) & (photons.energies <= 20))
    assert main(["surrogate", "sample", "--surrogate", str(checkpoint), "--kind", "muon"]) == 2
    assert "expected one of electron, photon, pion" in capsys.readouterr().err
