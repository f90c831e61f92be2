"""Fixtures shared by every test directory."""

from __future__ import annotations

import pytest

SEED = 0

NEVER = 60.0
"""A timeout no test waits out: a refusal must be reported as such, not as a timeout."""


@pytest.fixture
def seed() -> int:
    """Seed Python's, numpy's and torch's global generators; returns the seed used."""
    import pyro  # imported here so that collecting socket and codec tests stays fast

    pyro.set_rng_seed(SEED)
    return SEED


@pytest.fixture(autouse=True)
def no_inherited_curve_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """CURVE is off unless a test turns it on, whatever ``$PPX_CURVE`` the shell running pytest has."""
    from ppx.curve import ENVIRONMENT_VARIABLE

    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "")


@pytest.fixture(scope="module")
def curve_keys(tmp_path_factory: pytest.TempPathFactory):
    """A key directory from ``ppx keys``: an engine's and a simulator's CURVE pairs, each authorising the other."""
    from ppx.curve import create_keys

    return create_keys(tmp_path_factory.mktemp("curve") / "keys")


def pytest_configure(config) -> None:
    # Tiny networks and many small tensor ops: torch's thread hand-offs cost more than they
    # save on two shared cores (the `ppx` command and the simulators set the same default).
    import torch
    torch.set_num_threads(1)
