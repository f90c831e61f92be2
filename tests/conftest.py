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
