"""``ppx demo`` at a tiny budget: the whole flagship workflow runs and writes its outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import arviz
import pytest
import torch


def demo(*arguments):
    return subprocess.run([sys.executable, "-m", "inference", "demo", *arguments, "--json", "--quiet"],
                          capture_output=True, text=True, timeout=600)


TINY = ("--train-traces", "64", "-n", "12", "--batch-size", "16", "--lstm-dim", "16", "--observation-dim", "8",
        "--learning-rate", "3e-3", "--embedding", "calorimeter=cnn-clusters", "--device", "cpu")


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    run = demo(*TINY, "--out", str(out))
    assert run.returncode == 0, run.stderr
    return out, json.loads(run.stdout)


def test_demo_runs_end_to_end_and_writes_its_outputs(demo_output):
    out, summary = demo_output
    assert set(summary["engines"]) == {"IC", "prior IS"}
    for engine in summary["engines"].values():
        assert set(engine["latents"]) == {"px", "py", "pz", "channel"}
        assert engine["ess"] >= 1.0
    assert summary["training"]["traces"] >= 64
    for name in ("momentum_posteriors.png", "channel_probabilities.png", "calorimeter.png", "loss.png"):
        assert (out / name).stat().st_size > 10_000
    assert arviz.from_netcdf(out / "posterior.nc").posterior["px"].size == 12
    checkpoint = torch.load(out / "network.ckpt", weights_only=True)
    assert len(checkpoint["addresses"]) >= 4
    assert (checkpoint["config"]["lstm_dim"], checkpoint["config"]["observation_dim"]) == (16, 8)
    assert checkpoint["config"]["embeddings"] == {"calorimeter": "cnn-clusters"}
    assert summary["config"]["learning_rate"] == 3e-3
    assert json.loads((out / "summary.json").read_text())["truth"]["channel_name"]


def test_the_demo_repeats_under_its_seed(demo_output, tmp_path):
    """Two copies of the tau simulator serve the training batches and the traces in whatever order
    their replies come; each draws from its own stream, so the run repeats number for number."""
    _, first = demo_output
    run = demo(*TINY, "--out", str(tmp_path))
    assert run.returncode == 0, run.stderr
    again = json.loads(run.stdout)
    assert again["training"]["validation_loss"] == first["training"]["validation_loss"]
    numbers, expected = flattened(again["engines"]), flattened(first["engines"])
    assert numbers.keys() == expected.keys()
    for path, number in numbers.items():  # batched LSTM steps may round differently
        assert number == pytest.approx(expected[path], rel=1e-6, abs=1e-9), path


def flattened(summary: dict, prefix: str = "") -> dict:
    """The numbers (and other leaves) of a nested summary by their paths."""
    leaves = {}
    for key, value in summary.items():
        path = f"{prefix}/{key}"
        leaves.update(flattened(value, path) if isinstance(value, dict) else {path: value})
    return leaves


def test_demo_reuses_a_trained_network_on_likelihood_images_and_adapts_it(demo_output, tmp_path):
    trained, first = demo_output
    out = tmp_path / "again"
    run = demo("--network", str(trained / "network.ckpt"), "--image-source", "likelihood", "-n", "12",
               "--seed", "3", "--adapt-rounds", "2", "--out", str(out))
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["training"]["traces"] == first["training"]["traces"]
    assert summary["training"]["network"] == str(trained / "network.ckpt")
    assert not (out / "network.ckpt").exists()
    assert (out / "loss.png").stat().st_size > 10_000
    assert summary["config"]["image_source"] == "likelihood"
    adapted = summary["engines"]["IC adapted"]
    assert adapted["runs"] == 3 * 12  # two rounds of 12, then the final 12, all kept
    assert summary["engines"]["IC"]["runs"] == 12
    assert 1.0 <= adapted["ess"] <= adapted["runs"]


def test_demo_refuses_negative_adaptation_rounds(tmp_path):
    run = demo("--adapt-rounds", "-1", "--out", str(tmp_path / "out"))
    assert run.returncode != 0
    assert "adapt-rounds must be 0 or more, got -1" in run.stderr


@pytest.mark.parametrize("flag, value, message", [
    ("--learning-rate", "0", "learning-rate must be positive, got 0.0"),
    ("--observation-dim", "0", "observation-dim must be positive, got 0"),
    ("--embedding", "calorimeter=bogus", "--embedding calorimeter=bogus: unknown embedding 'bogus'"),
    ("--embedding", "calorimeter", "--embedding expects NAME=KIND"),
    ("--device", "tpu", "'tpu' is not a device: use cpu, cuda or cuda:N"),
    ("--device", "mps", "'mps': the network trains on cpu or cuda, not mps"),
])
def test_demo_names_a_bad_setting_before_starting(tmp_path, flag, value, message):
    run = demo(flag, value, "--out", str(tmp_path / "out"))
    assert run.returncode != 0
    assert message in run.stderr
    assert not (tmp_path / "out").exists()


def test_demo_names_a_missing_network(tmp_path):
    run = demo("--network", str(tmp_path / "absent.ckpt"), "--out", str(tmp_path / "out"))
    assert run.returncode != 0
    assert "absent.ckpt does not exist" in run.stderr


def test_the_table_flags_unreliable_weights_and_says_how_to_get_better_ones(demo_output):
    from inference.demo import summary_table

    _, summary = demo_output
    summary = json.loads(json.dumps(summary))
    summary["engines"]["IC"]["khat"], summary["engines"]["prior IS"]["khat"] = 98.5, 0.3
    lines = summary_table(summary).splitlines()
    assert "unreliable" in next(line for line in lines if line.startswith("IC:"))
    assert "unreliable" not in next(line for line in lines if line.startswith("prior IS:"))
    assert "--train-traces" in lines[-1] and "--network" in lines[-1]

    summary["engines"]["IC"]["khat"], summary["engines"]["prior IS"]["khat"] = 0.4, float("inf")
    lines = summary_table(summary).splitlines()
    assert "unreliable" in lines[-1] and lines[-1].startswith("prior IS:")  # no advice on training
    assert not any("unreliable" in line for line in lines[:-1])
