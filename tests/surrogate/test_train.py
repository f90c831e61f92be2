"""Training: checkpoints that load with weights_only, resume that continues exactly, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.surrogate.checkpoint import load_checkpoint
from inference.surrogate.config import SurrogateConfig
from inference.surrogate.response import ResponseModel
from inference.surrogate.surrogate import Surrogate
from inference.surrogate.train import train_surrogate
from tests.surrogate.blobs import blob_showers

TINY = dict(batch_size=32, latent_dim=8, generator_hidden=32, critic_hidden=32, critic_steps=2,
            selection_showers=64)


@pytest.fixture(scope="module")
def showers():
    return blob_showers(160)


@pytest.fixture(scope="module")
def trained(showers, tmp_path_factory):
    """A checkpoint after one epoch."""
    path = tmp_path_factory.mktemp("trained") / "surrogate.pt"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_surrogate(showers, path, epochs=1, progress=False, **TINY)
    finally:
        torch.set_num_threads(threads)
    return path


def test_checkpoint_is_weights_and_config_and_versions(showers, tmp_path, one_thread):
    path = tmp_path / "surrogate.pt"
    result = train_surrogate(showers, path, epochs=2, progress=False, **TINY)
    assert result.epochs == 2 and len(result.history) == 2 and 1 <= result.best_epoch <= 2
    assert result.best_score == min(record["ks"] for record in result.history)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "ppx-surrogate" and raw["epoch"] == 2
    assert set(raw["versions"]) == {"ppx-inference", "torch", "python"}
    assert SurrogateConfig.from_dict(raw["config"]) == SurrogateConfig(epochs=2, **TINY)
    assert raw["data"]["kind_names"] == list(showers.kind_names)
    assert raw["version"] == 2 and set(raw["response"]) >= {"location", "log_scale", "bin_centers", "quantiles"}
    assert [p.name for p in tmp_path.iterdir()] == ["surrogate.pt"]  # no temporary left behind


def test_loaded_surrogate_draws_totals_from_the_saved_response_model(showers, trained, one_thread):
    checkpoint = load_checkpoint(trained)
    response = ResponseModel.from_state(checkpoint["response"])
    kinds, energies = showers.kinds, showers.energies
    generated = Surrogate.load(trained).sample(kinds, energies, seed=7).sum(axis=1, dtype=np.float64) / energies
    expected, _ = response.sample(torch.from_numpy(kinds), torch.from_numpy(energies.astype(np.float32)),
                                  torch.Generator().manual_seed(7))
    np.testing.assert_allclose(generated, expected.numpy(), rtol=1e-4, atol=1e-5)
    # and that model is the one fitted to the training part of the showers: its responses span theirs
    real = showers.showers.sum(axis=1) / energies
    assert real.min() - 0.01 < generated.min() and generated.max() < real.max() + 0.01


def test_a_version_1_checkpoint_is_refused_with_a_retrain_message(trained, tmp_path):
    checkpoint = torch.load(trained, weights_only=True)
    checkpoint["version"] = 1
    del checkpoint["response"]
    old = tmp_path / "old.pt"
    torch.save(checkpoint, old)
    with pytest.raises(ValueError, match="version 1 surrogate checkpoint.*retrain the surrogate"):
        Surrogate.load(old)
    checkpoint["version"] = 3
    torch.save(checkpoint, old)
    with pytest.raises(ValueError, match="version 3 .*update ppx-inference"):
        Surrogate.load(old)


def test_resume_continues_from_the_saved_epoch_as_if_never_stopped(showers, tmp_path, one_thread):
    straight, stopped = tmp_path / "straight.pt", tmp_path / "stopped.pt"
    train_surrogate(showers, straight, epochs=3, progress=False, **TINY)
    train_surrogate(showers, stopped, epochs=1, progress=False, **TINY)
    resumed = train_surrogate(showers, stopped, epochs=3, resume=True, progress=False)
    assert resumed.epochs == 3 and [record["epoch"] for record in resumed.history] == [1, 2, 3]
    a, b = load_checkpoint(straight), load_checkpoint(stopped)
    for name, value in a["generator"].items():
        torch.testing.assert_close(b["generator"][name], value, msg=name)
    assert b["critic_updates"] == a["critic_updates"]
    again = train_surrogate(showers, stopped, epochs=3, resume=True, progress=False)
    assert again.epochs == 3 and len(again.history) == 3  # already done: nothing more


def test_resume_refuses_another_architecture_or_other_data(showers, trained, one_thread):
    path = trained
    with pytest.raises(ValueError, match="generator_hidden=64"):
        train_surrogate(showers, path, epochs=2, resume=True, progress=False, generator_hidden=64)
    with pytest.raises(ValueError, match="same data"):
        train_surrogate(showers.subset(slice(0, 100)), path, epochs=2, resume=True, progress=False)


def test_loaded_surrogate_samples_batches_reproducibly(showers, trained, one_thread):
    surrogate = Surrogate.load(trained)
    kinds, energies = np.array([0, 1, 2, 2, 0]), np.array([1.0, 5.0, 50.0, 99.0, 20.0])
    first = surrogate.sample(kinds, energies, seed=3)
    assert first.shape == (5, 504) and first.dtype == np.float32 and np.all(np.isfinite(first))
    np.testing.assert_array_equal(surrogate.sample(kinds, energies, seed=3), first)
    assert not np.array_equal(surrogate.sample(kinds, energies, seed=4), first)
    assert surrogate.sample(kinds, energies, batch_size=2).shape == (5, 504)
    assert surrogate.sample(1, 10.0).shape == (1, 504)
    assert surrogate.sample(2, np.full(7, 10.0)).shape == (7, 504)
    like = surrogate.sample_like(showers.subset(slice(0, 10)))
    assert like.source == "surrogate" and like.showers.shape == (10, 504)


@pytest.mark.parametrize("kinds, energies, message", [
    ([3], [10.0], "kinds must lie in 0..2"),
    ([0.5], [10.0], "integer"),
    ([0], [-1.0], "positive"),
    ([0, 1], [1.0, 2.0, 3.0], "as many kinds as energies"),
])
def test_sample_errors_name_the_problem(trained, kinds, energies, message):
    with pytest.raises(ValueError, match=message):
        Surrogate.load(trained).sample(kinds, energies)


@pytest.mark.parametrize("settings, message", [
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"generator_lr": -1.0}, "generator_lr must be positive"),
    ({"validation_fraction": 1.0}, "validation_fraction"),
    ({"cell_pattern": "sigmoid"}, "cell_pattern must be 'softmax' or 'relu'"),
    ({"not_a_setting": 1}, "unexpected keyword|not_a_setting"),
])
def test_invalid_settings_are_rejected(settings, message):
    with pytest.raises((ValueError, TypeError), match=message):
        SurrogateConfig(**settings)


def test_not_a_checkpoint_is_a_value_error(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable surrogate checkpoint"):
        Surrogate.load(path)
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a surrogate checkpoint"):
        Surrogate.load(path)


def test_weights_that_do_not_fit_are_a_value_error(trained, tmp_path):
    checkpoint = torch.load(trained, weights_only=True)
    checkpoint["best_generator"].pop("cells.weight")  # a generator of another architecture
    altered = tmp_path / "altered.pt"
    torch.save(checkpoint, altered)
    with pytest.raises(ValueError, match="does not fit this version's network"):
        Surrogate.load(altered)
