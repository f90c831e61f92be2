"""Seeded runs repeat: every job draws from its own stream, whichever simulator copy serves it."""

from __future__ import annotations

import argparse
import json
import threading

import numpy as np
import pytest
import torch

from inference.cli import main
from inference.cli.train import _online_seed
from inference.controllers import PRIOR
from inference.ic import NetworkProposal, OnlineSource, load_checkpoint
from inference.importance import importance_sampling
from inference.local import LocalSimulator
from inference.pool import SimulatorPool
from inference.remote import RemoteSimulator
from inference.streams import SEED_LIMIT, Stream, job_seeds
from simulators import branching

from .networks import barely_train


def values(traces) -> list[list[float]]:
    return [[float(np.sum(choice.value)) for choice in trace.samples] for trace in traces]


def test_a_stream_advances_only_itself():
    torch.manual_seed(0)
    expected_outside = torch.rand(3)
    torch.manual_seed(0)
    stream, again = Stream(7), Stream(7)
    with stream:
        first = torch.rand(2)
    outside = torch.rand(3)
    with stream:
        second = torch.rand(2)
    with again:
        both = torch.rand(4)
    assert torch.equal(outside, expected_outside)
    assert torch.equal(torch.cat([first, second]), both)


def test_a_stream_leaves_other_threads_on_the_global_generator():
    drawn = {}

    def draw() -> None:
        torch.manual_seed(0)
        with Stream(7):
            drawn["thread"] = torch.rand(2)

    thread = threading.Thread(target=draw)
    thread.start()
    thread.join()
    torch.manual_seed(0)
    assert torch.equal(drawn["thread"], torch.rand(2))


def test_job_seeds_follow_their_seed_and_fit_the_wire():
    seeds = job_seeds(1000, 3)
    assert seeds == job_seeds(1000, 3) and seeds != job_seeds(1000, 4)
    assert seeds != job_seeds(1000, (3, 0)) and job_seeds(5, (3, 0)) == job_seeds(5, (3, 0))
    assert all(1 <= seed < SEED_LIMIT for seed in seeds) and len(set(seeds)) == 1000
    torch.manual_seed(1)
    drawn = job_seeds(4)
    torch.manual_seed(1)
    assert job_seeds(4) == drawn


@pytest.mark.parametrize("batched", [True, False])
def test_seeded_prior_traces_do_not_depend_on_the_pool(batched):
    """The simulators sample batches themselves with the seeds they are sent; engine-driven traces
    draw in the engine, interleaved over the copies in whatever order replies come."""
    def draw(workers: int, seed: int) -> list[list[float]]:
        with SimulatorPool("python -m simulators.branching", workers=workers) as pool:
            if batched:
                return values(pool.prior(40, batch_size=6, seed=seed))
            torch.manual_seed(seed)
            return values(pool.run_many([PRIOR] * 40))

    one = draw(1, seed=5)
    assert draw(3, seed=5) == one
    assert draw(3, seed=6) != one


def test_seeded_ic_importance_sampling_does_not_depend_on_the_pool():
    """Proposals of traces waiting together come from one LSTM call, but each trace's values from its
    own stream: one copy and three give the same run, to the rounding of the batched call."""
    network = barely_train(branching.model).network
    observations = {"obs": np.array(3.0)}

    def run(workers: int):
        with SimulatorPool("python -m simulators.branching", workers=workers, reproducible=True) as pool:
            torch.manual_seed(11)
            posterior = importance_sampling(pool, 60, observations, proposal=NetworkProposal(network, observations))
        return values(posterior.traces), posterior.log_weights

    (one, one_weights), (three, three_weights) = run(1), run(3)
    assert len(one) == len(three) and [len(v) for v in one] == [len(v) for v in three]
    np.testing.assert_allclose(np.concatenate([np.array(v) for v in three]),
                               np.concatenate([np.array(v) for v in one]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(three_weights, one_weights, rtol=1e-5, atol=1e-5)


def test_in_process_prior_traces_follow_their_seed():
    simulator = LocalSimulator(branching.model)
    assert values(simulator.prior(20, seed=(2, 1))) == values(simulator.prior(20, seed=(2, 1)))
    assert values(simulator.prior(20, seed=(2, 1))) != values(simulator.prior(20, seed=(2, 2)))


def test_a_served_simulator_samples_the_batches_a_pool_would(start_simulator):
    with RemoteSimulator(start_simulator("simulators.branching"), timeout=5, handshake_timeout=60) as simulator:
        served = values(simulator.prior(40, batch_size=6, seed=9))
        assert values(simulator.prior(40, batch_size=6, seed=9)) == served
    with SimulatorPool("python -m simulators.branching", workers=2) as pool:
        assert values(pool.prior(40, batch_size=6, seed=9)) == served


def test_ppx_posterior_repeats_under_its_seed(barely_trained_checkpoint, capsys):
    def posterior(seed: str) -> dict:
        assert main(["posterior", "--engine", "ic", "--network", str(barely_trained_checkpoint), "--simulator",
                     "python -m simulators.gaussian", "--workers", "2", "--observe", "obs0=8", "--observe", "obs1=9",
                     "-n", "200", "--seed", seed, "--json", "--quiet"]) == 0
        return json.loads(capsys.readouterr().out)["variables"]["mu"]

    first = posterior("3")
    assert posterior("3") == pytest.approx(first, rel=1e-9)
    assert posterior("4")["mean"] != pytest.approx(first["mean"], rel=1e-9)


def test_online_training_repeats_its_batches_and_a_resumed_run_draws_fresh_ones(barely_trained_checkpoint):
    def first_batches(seed) -> list[list[float]]:
        source = OnlineSource(pool, 16, seed=seed)
        try:
            return values(source.next_batch() + source.next_batch())
        finally:
            source.close()

    fresh = _online_seed(argparse.Namespace(seed=3, resume=False, out=str(barely_trained_checkpoint)))
    resumed = _online_seed(argparse.Namespace(seed=3, resume=True, out=str(barely_trained_checkpoint)))
    assert fresh == (3, 0, 0) and resumed == (3, 0, 640)  # the checkpoint trained on 640 traces
    with SimulatorPool("python -m simulators.gaussian", workers=2) as pool:
        batches = first_batches(fresh)
        assert first_batches(fresh) == batches
        assert not set(map(tuple, first_batches(resumed))) & set(map(tuple, batches))


def test_online_training_from_an_in_process_model_repeats_under_its_seed(tmp_path, capsys):
    def trained(seed: str, name: str) -> dict[str, torch.Tensor]:
        out = tmp_path / f"{name}.ckpt"
        assert main(["train", "--model", "simulators.gaussian:model", "-n", "192", "--batch-size", "32",
                     "--validation-size", "32", "--lstm-dim", "8", "--observation-dim", "8", "--seed", seed,
                     "--quiet", "--json", "--out", str(out)]) == 0
        capsys.readouterr()
        return load_checkpoint(out)[0].state_dict()

    first, again, other = trained("5", "first"), trained("5", "again"), trained("6", "other")
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)
