"""How much an untrusted peer may make us allocate: caps on tensor sizes and batch lengths.

A frame cannot hold more tensor data than its own bytes, but a tensor's shape,
a distribution's broadcast shape or a request for prior traces can still ask for
far more. Every such size is checked against these caps before anything is
allocated. ``MAX_TENSOR_ELEMENTS`` may be set with the environment variable
``PPX_MAX_TENSOR_ELEMENTS`` (read at import, so a launched simulator inherits the
engine's setting); code may also assign ``ppx.limits.MAX_TENSOR_ELEMENTS``, which is
read at each check.
"""

from __future__ import annotations

import os
from typing import Mapping

TENSOR_ELEMENTS_VARIABLE = "PPX_MAX_TENSOR_ELEMENTS"
DEFAULT_MAX_TENSOR_ELEMENTS = 2 ** 28
"""2 GiB of float64: as much as the largest frame the transport accepts."""

MAX_DIMENSIONS = 32
"""Tensors may have at most this many dimensions (numpy's own limit is 64)."""

MAX_BATCH_TRACES = 2 ** 20
"""A simulator samples at most this many prior traces for one ``Run(num_traces)``."""


def tensor_elements_from(environment: Mapping[str, str]) -> int:
    """The element cap ``environment`` sets, or the default; a malformed setting raises ``ValueError``."""
    text = environment.get(TENSOR_ELEMENTS_VARIABLE)
    if text is None or not text.strip():
        return DEFAULT_MAX_TENSOR_ELEMENTS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{TENSOR_ELEMENTS_VARIABLE} must be a positive integer, got {text!r}")
    return value


MAX_TENSOR_ELEMENTS = tensor_elements_from(os.environ)
"""Most elements one tensor (or one distribution's broadcast parameters) may hold."""


def tensor_too_large(what: str, shape: object, elements: float) -> str:
    """The error message for a tensor of ``elements`` elements above the cap."""
    return (f"{what}: tensor shape {shape} holds {elements:.4g} elements, more than the limit of "
            f"{MAX_TENSOR_ELEMENTS} (set {TENSOR_ELEMENTS_VARIABLE} to raise it)")
