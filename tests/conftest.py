"""Fixtures shared by every test directory."""

from __future__ import annotations

import pytest

SEED = 0


@pytest.fixture
def seed() -> int:
    """Seed Python's, numpy's and torch's global generators; returns the seed used."""
    import pyro  # imported here so that collecting socket and codec tests stays fast

    pyro.set_rng_seed(SEED)
    return SEED


def pytest_configure(config) -> None:
    # Tiny networks and many small tensor ops: torch's thread hand-offs cost more than they
    # save on two shared cores (the `ppx` command and the simulators set the same default).
    import torch
    torch.set_num_threads(1)
