"""Rank-aware sharding of trace files: disjoint shards, and the global batch order of one process."""

from __future__ import annotations

import pytest

from inference.ic import OfflineSource
from inference.ic.distributed import Group, local_batch_size, sharded_offline_source


def keys(traces) -> list[tuple]:
    return [tuple((c.key, float(c.value.sum())) for c in t.choices) for t in traces]


def test_shards_read_the_single_process_batches_and_no_trace_twice_per_epoch(branching_file):
    single = OfflineSource([branching_file], 16, seed=5)
    shards = [OfflineSource([branching_file], local_batch_size(16, 2), seed=5, shard=r, num_shards=2)
              for r in range(2)]
    seen = []
    for _ in range(20):  # one epoch: 320 traces
        together = shards[0].next_batch() + shards[1].next_batch()
        assert keys(together) == keys(single.next_batch())
        seen.extend(keys(together))
    assert len(seen) == 320 and all(s.epoch == 1 for s in shards)
    for source in (single, *shards):
        source.close()


def test_one_rank_source_is_the_plain_source(branching_file):
    source = sharded_offline_source([branching_file], 16, Group(), seed=1)
    assert len(source) == 320 and source.batch_size == 16
    source.close()


def test_global_batch_must_split_evenly():
    assert local_batch_size(64, 4) == 16
    with pytest.raises(ValueError, match="does not split evenly over 3 ranks"):
        local_batch_size(64, 3)
