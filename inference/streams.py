"""Random streams per job, so that a seeded engine draws the same traces however its jobs interleave.

A pool runs its jobs over several simulator copies in whatever order their replies
arrive, and a copy samples a prior batch with its own generator. Draws from torch's one
global generator would therefore land in different traces from run to run. Instead
every job gets a seed up front, in job order, from the caller's seed or torch's
generator: an engine-driven job makes its draws with torch's generator set to the
job's own state (``Stream``), and a batch job sends its seed to the simulator. Seeded
with ``torch.manual_seed``, a run then gives the same traces whatever the number of
copies or their timing (IC proposals to the rounding of a batched network call).

Streams are for the engine's main thread: a job run from another thread (a trace
producer feeding training) draws from torch's generator directly, because the swap
would race with the other thread's own draws and could hand it numbers twice.
"""

from __future__ import annotations

import threading
from typing import Optional, Sequence

import numpy as np
import torch

SEED_LIMIT = 2**32
"""Job seeds lie in [1, SEED_LIMIT): a batch's seed travels as a uint32, and 0 there means none."""

Seed = Optional[int | Sequence[int]]
"""A seed, or several ints that together make one (a run's seed and a shard's number)."""


def seed_from_torch() -> int:
    """A seed drawn from torch's generator: fixed under ``torch.manual_seed``, fresh otherwise."""
    return int(torch.randint(0, 2**62, ()))


def job_seeds(count: int, seed: Seed = None) -> list[int]:
    """``count`` job seeds derived from ``seed``, or from torch's generator when it is None."""
    if seed is None:
        seed = seed_from_torch()
    first, *rest = (seed,) if isinstance(seed, int) else seed
    # The other ints spawn a child sequence: (7, 0) differs from 7, as entropy [7, 0] would not.
    sequence = np.random.SeedSequence(first, spawn_key=tuple(rest))
    return [int(s) for s in np.random.default_rng(sequence).integers(1, SEED_LIMIT, count)]


class Stream:
    """One job's random state: inside ``with stream:`` torch's global generator draws from it.

    Entering swaps the global state for the stream's and leaving swaps it back, so draws
    made in between advance this stream only; outside the main thread it does nothing.
    """

    __slots__ = ("_state", "_outer")

    def __init__(self, seed: int) -> None:
        self._state = torch.Generator().manual_seed(seed).get_state()
        self._outer: Optional[torch.Tensor] = None

    def __enter__(self) -> "Stream":
        if threading.current_thread() is threading.main_thread():
            self._outer = torch.get_rng_state()
            torch.set_rng_state(self._state)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._outer is not None:
            self._state = torch.get_rng_state()
            torch.set_rng_state(self._outer)
            self._outer = None
