"""Two gloo ranks train the same weights as one process on the same global batches.

Both runs read one trace file written by the test: the single process in
chunks of the global batch, each rank its shard in chunks of half of it, all
shuffled with the same seed, so step k of both runs sees the same 16 traces
in the same order. The branching model's traces hold a varying number of
``particles/hit`` addresses, so ranks meet new addresses at different steps.
"""

from __future__ import annotations

import re

import pytest
import torch

from inference.ic import NetworkConfig, OfflineSource, Trainer, TrainingConfig, load_checkpoint
from inference.ic.distributed import DistributedTrainer, Group
from tests.distributed.conftest import GLOBAL_BATCH, TINY

NUM_TRACES = 256


def single_process(path, checkpoint, trainer_class=Trainer, **extra) -> Trainer:
    """What ``ppx train --seed 0`` does in one process."""
    torch.manual_seed(0)
    source = OfflineSource([path], GLOBAL_BATCH, seed=0)
    try:
        trainer = trainer_class(source, network_config=NetworkConfig(lstm_dim=16, observation_dim=16, components=2),
                                config=TrainingConfig(batch_size=GLOBAL_BATCH, validation_size=16),
                                checkpoint=str(checkpoint), **extra)
        trainer.train(NUM_TRACES, progress_bar=False)
    finally:
        source.close()
    return trainer


def max_difference(first: dict, second: dict) -> float:
    assert first.keys() == second.keys()
    return max(float((first[k].double() - second[k].double()).abs().max()) for k in first)


def test_two_ranks_match_one_process_with_different_new_addresses_per_rank(branching_file, tmp_path,
                                                                           rank_processes):
    ranks = rank_processes(2, "--dataset", str(branching_file), "--out", str(tmp_path / "two.ckpt"),
                           "-n", str(NUM_TRACES), "--log-level", "INFO", *TINY)
    one = single_process(branching_file, tmp_path / "one.ckpt")
    digests = []
    for rank in ranks:
        _, stderr = rank.communicate(timeout=100)
        assert rank.returncode == 0, stderr
        digests.append(re.findall(r"replicas agree after (\d+) traces: \d+ addresses, weights digest (\w+)", stderr))
    # Each rank logged the hash of its own address table and weights: bit-identical at the start and the end.
    assert digests[0] == digests[1] and digests[0][-1][0] == str(NUM_TRACES)

    two = torch.load(tmp_path / "two.ckpt", weights_only=True)
    reference = torch.load(tmp_path / "one.ckpt", weights_only=True)
    # The replicas match the single process's weights to float rounding, with the same address table.
    assert [a["key"] for a in two["addresses"]] == [a["key"] for a in reference["addresses"]]
    assert max_difference(two["state_dict"], reference["state_dict"]) < 1e-5
    assert two["progress"]["traces"] == reference["progress"]["traces"] == NUM_TRACES
    # Steps where one rank met addresses the other had not: the union was added on both.
    assert any(len(set(counts)) > 1 for _, counts in two["progress"]["address_sync"])
    assert len(one.network.addresses) == len(two["addresses"]) > 3


def test_one_rank_is_the_single_process_trainer_exactly(branching_file, tmp_path):
    plain = single_process(branching_file, tmp_path / "plain.ckpt")
    wrapped = single_process(branching_file, tmp_path / "wrapped.ckpt", trainer_class=DistributedTrainer,
                             group=Group())
    assert max_difference(plain.network.state_dict(), wrapped.network.state_dict()) == 0.0
    assert plain.progress["loss"] == wrapped.progress["loss"]
    network, content = load_checkpoint(tmp_path / "wrapped.ckpt")
    assert content["progress"]["world_size"] == 1 and content["progress"]["large_batch"]["optimizer"] == "adam"


class _DivergedPeer(Group):
    """A one-process stand-in for a group whose other rank holds different weights."""

    def all_gather_json(self, value, what):
        return [value, "0" * len(value)]


def test_diverged_replicas_are_reported(branching_file, tmp_path):
    trainer = single_process(branching_file, tmp_path / "net.ckpt", trainer_class=DistributedTrainer, group=Group())
    trainer.group = _DivergedPeer()
    with pytest.raises(RuntimeError, match="replicas diverged after 256 traces"):
        trainer.verify_replicas()


class _RunsCodeWhenUnpickled:
    def __reduce__(self):
        return (print, ("unpickled",))


def test_ranks_exchange_json_and_trace_frames_never_pickles():
    group = Group()
    assert group.all_gather_json([("address", "Normal", 1, 0)], "gathering") == [[["address", "Normal", 1, 0]]]
    assert group.broadcast_json({"error": None}, "broadcasting") == {"error": None}
    with pytest.raises(TypeError, match="not JSON serializable"):
        group.all_gather_json(_RunsCodeWhenUnpickled(), "gathering")
