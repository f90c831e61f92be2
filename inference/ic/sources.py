"""Where training traces come from: simulators generating them live, or HDF5 trace files."""

from __future__ import annotations

import itertools
import queue
import random
import threading
from pathlib import Path
from typing import Any, Optional, Sequence

from inference.local import LocalSimulator
from inference.streams import Seed, seed_from_torch
from inference.trace import Trace
from inference.trace_file import TraceFile


class OnlineSource:
    """Prior traces from a simulator (pool, remote or in-process), one batch per training step.

    For a pool or a remote simulator a background thread keeps up to ``prefetch``
    batches ready, so simulator processes work while the engine runs its training
    step; only that thread touches the simulator. An in-process model would gain
    nothing from the thread (it shares the interpreter with training) and, drawing
    from torch's generator beside the training thread, would not repeat under a
    seed, so its batches are drawn on the training thread when asked for.
    Batch k is drawn with the seed ``(*seed, k)`` (``seed`` one int or several, by
    default one from torch's generator), so training repeats under a seed.
    """

    def __init__(self, simulator: Any, batch_size: int, prefetch: int = 4, seed: Seed = None) -> None:
        self.simulator = simulator
        self.batch_size = batch_size
        if seed is None:
            seed = seed_from_torch()
        self.seed = (seed,) if isinstance(seed, int) else tuple(seed)
        self._numbers = itertools.count()
        self._thread: Optional[threading.Thread] = None
        if isinstance(simulator, LocalSimulator):
            return
        self._batches: queue.Queue = queue.Queue(maxsize=prefetch)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="trace-producer", daemon=True)
        self._thread.start()

    def _draw(self) -> list[Trace]:
        return self.simulator.prior(self.batch_size, batch_size=self.batch_size, seed=(*self.seed, next(self._numbers)))

    def _produce(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._draw()
            except BaseException as err:  # handed to the training thread, which raises it
                self._batches.put(err)
                return
            while not self._stop.is_set():
                try:
                    self._batches.put(batch, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def next_batch(self) -> list[Trace]:
        if self._thread is None:
            return self._draw()
        item = self._batches.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=60)


class OfflineSource:
    """Traces from HDF5 files written by ``ppx prior --out``, in shuffled chunks, epoch after epoch.

    Within an epoch every trace is read once. ``shard``/``num_shards`` let parallel
    trainers split the chunks between them.
    """

    def __init__(self, paths: Sequence[str | Path], batch_size: int, seed: Optional[int] = None,
                 shard: int = 0, num_shards: int = 1) -> None:
        if not paths:
            raise ValueError("no trace files given")
        self.files = [TraceFile(path) for path in paths]
        self.batch_size = batch_size
        self.random = random.Random(seed)
        self.chunks = [(f, start, min(start + batch_size, len(f)))
                       for f in self.files for start in range(0, len(f), batch_size)]
        self.chunks = self.chunks[shard::num_shards]
        if not self.chunks:
            raise ValueError(f"trace files {', '.join(map(str, paths))} hold no traces for shard {shard}")
        self.epoch = 0
        self._order: list[int] = []

    def __len__(self) -> int:
        return sum(stop - start for _, start, stop in self.chunks)

    def next_batch(self) -> list[Trace]:
        if not self._order:
            self._order = list(range(len(self.chunks)))
            self.random.shuffle(self._order)
            self.epoch += 1
        file, start, stop = self.chunks[self._order.pop()]
        return file.read(start, stop)

    def close(self) -> None:
        for file in self.files:
            file.close()
