"""The negotiated "stage" extension: the tau simulator offers its shower stage to the engine."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from inference.local import LocalSimulator
from inference.remote import RemoteSimulator
from simulators import tau_decay

LAYER_SHAPES = [(3, 96), (12, 12), (12, 6)]


def empty_shower(inputs):
    return tuple(np.zeros(shape) for shape in LAYER_SHAPES)


def test_engine_records_the_stage_when_the_simulator_runs_it(start_simulator):
    with RemoteSimulator(start_simulator("simulators.tau_decay"), handshake_timeout=60) as simulator:
        assert "stage" in simulator.capabilities
        traces = [simulator.run() for _ in range(6)]
    calls = [call for trace in traces for call in trace.stages]
    assert calls, "no showering particle in six tau decays"
    for call in calls:
        assert call.name == "shower" and not call.surrogate
        kind, energy = (float(x) for x in call.inputs)
        assert kind in (0.0, 1.0, 2.0) and energy > 0
        assert [o.shape for o in call.outputs] == LAYER_SHAPES


def front_shower(inputs):
    """A surrogate whose showers stop in the first layer: every deposit lands in depth voxels 0-3."""
    kind, energy = (float(x) for x in inputs)
    layers = [np.zeros(shape) for shape in LAYER_SHAPES]
    layers[0][1, 48] = 0.18 * energy
    return tuple(layers)


def test_engine_surrogate_replaces_the_shower_stage(start_simulator):
    address = start_simulator("simulators.tau_decay")
    with RemoteSimulator(address, handshake_timeout=60, stages={"shower": front_shower}) as simulator:
        traces = [simulator.run() for _ in range(8)]
    showered = [t for t in traces if t.stages]
    assert showered and all(call.surrogate for t in showered for call in t.stages)
    muonic = {channel.name for channel in tau_decay.CHANNELS.channels if "mu" in channel.name}
    for trace in showered:
        if tau_decay.CHANNELS.channels[int(trace.named("channel").value)].name not in muonic:
            image, expected = trace.named("calorimeter").value, trace.named("calorimeter").wire.params[0]
            assert image[:, :, 4:].max() < 0.15  # electronic noise only: the deposits came from the surrogate
            # ... all of them in front, as much as the likelihood expects (noise sums to +-1.4 GeV there)
            assert abs(image[:, :, :4].sum() - expected.sum()) < 6.0


def test_in_process_simulator_uses_the_same_surrogates():
    traces = LocalSimulator(tau_decay.model, stages={"shower": empty_shower}).prior(6)
    assert all(call.surrogate for trace in traces for call in trace.stages)


@pytest.fixture(scope="module")
def shower_surrogate(tmp_path_factory):
    """A GAN surrogate of the calorimeter stage, recorded and trained at a tiny budget."""
    from inference.surrogate.record import record_showers
    from inference.surrogate.showers_file import read_showers
    from inference.surrogate.train import train_surrogate
    from simulators import calorimeter

    folder = tmp_path_factory.mktemp("surrogate")
    record_showers(LocalSimulator(calorimeter.model), 200, folder / "showers.h5", progress=False)
    checkpoint = folder / "surrogate.ckpt"
    train_surrogate(read_showers(folder / "showers.h5"), checkpoint, progress=False, epochs=1,
                    latent_dim=8, generator_hidden=32, critic_hidden=32, batch_size=50)
    return checkpoint


def test_a_trained_gan_surrogate_runs_the_tau_showers(start_simulator, shower_surrogate):
    from inference.surrogate.serving import ShowerStage

    stage = ShowerStage.load(str(shower_surrogate))
    address = start_simulator("simulators.tau_decay")
    with RemoteSimulator(address, handshake_timeout=60, stages={"shower": stage}) as simulator:
        traces = [simulator.run() for _ in range(6)]
    calls = [call for trace in traces for call in trace.stages]
    assert calls and all(call.surrogate for call in calls)
    assert all([o.shape for o in call.outputs] == LAYER_SHAPES for call in calls)
    assert all(np.isfinite(t.named("calorimeter").value).all() for t in traces)


def test_posterior_command_takes_a_surrogate_for_a_stage(shower_surrogate):
    run = subprocess.run([sys.executable, "-m", "inference", "posterior", "--simulator",
                          "python -m simulators.tau_decay", "--engine", "rmh", "-n", "4", "--burn-in", "0",
                          "--surrogate", f"shower={shower_surrogate}", "--json", "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["traces"] == 4
