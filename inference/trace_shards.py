"""A big trace dataset as numbered shards, ``DIR/prior-000000.h5``, ``DIR/prior-000001.h5``, ...

Shard *i* holds traces ``[i * size, (i + 1) * size)`` of the dataset, and each
shard is an ordinary trace file written atomically. A run that stops (a full disk,
a crash, Ctrl-C) keeps every shard it completed; the same command run again
finds them and writes only the missing ones. ``ppx train --dataset DIR`` reads
every shard of the directory.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Sequence

from inference.trace_file import TraceFile

SHARD_NAME = "prior-{index:06d}.h5"


@dataclass(frozen=True)
class Shard:
    """One shard: its number, its file and how many traces it holds."""

    index: int
    path: str
    num_traces: int

    @property
    def complete(self) -> bool:
        """Whether the shard's file exists; raises ``ValueError`` if it holds another number of traces."""
        if not os.path.exists(self.path):
            return False
        with TraceFile(self.path) as traces:
            found = len(traces)
        if found != self.num_traces:
            raise ValueError(f"{self.path} holds {found} traces, expected {self.num_traces}: it was written "
                             f"with another --shard-size or -n; use another --out directory")
        return True


def plan_shards(directory: str | os.PathLike, num_traces: int, shard_size: int) -> list[Shard]:
    """The shards of a dataset of ``num_traces`` traces, ``shard_size`` to a shard (the last may be smaller)."""
    if shard_size < 1:
        raise ValueError(f"shard size must be at least 1, got {shard_size}")
    directory = os.fspath(directory)
    return [Shard(index, os.path.join(directory, SHARD_NAME.format(index=index)),
                  min(shard_size, num_traces - start))
            for index, start in enumerate(range(0, num_traces, shard_size))]


def dataset_paths(patterns: Sequence[str]) -> list[str]:
    """Trace files named by paths, globs or directories (every ``*.h5`` inside), sorted, each once."""
    paths: set[str] = set()
    for pattern in patterns:
        if os.path.isdir(pattern):
            found = glob.glob(os.path.join(glob.escape(pattern), "*.h5"))
            if not found:
                raise ValueError(f"--dataset {pattern}: the directory holds no .h5 trace files")
            paths.update(found)
        else:
            paths.update(glob.glob(pattern) or [pattern])
    return sorted(paths)
