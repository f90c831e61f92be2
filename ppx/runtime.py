"""The simulator-side primitives ``sample``, ``observe`` and ``tag``, and the handler stack under them.

Each primitive builds a ``Site`` and passes it through the active handlers,
innermost first. With no handler active, ``sample`` draws from its distribution
and ``observe`` and ``tag`` do nothing, so an instrumented simulator runs
standalone unchanged. Serving a model to a remote engine, recording prior traces
and running in-process under the engine are all handlers.

Addresses come from names and call structure, never from line numbers: a named
site's address is its ``scope`` prefix plus its name; an unnamed site's is the
prefix plus the chain of function names from the model down to the call. The
engine adds the distribution kind and an instance counter to tell repeats apart.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from types import CodeType
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch

from ppx.distributions import as_float64_array
from ppx.messages import RECORD_OBSERVE, RECORD_SAMPLE, RECORD_TAG, SITE_STAGE
from ppx.sparse import is_sparse

_HANDLERS: list["Handler"] = []
_SCOPES: list[str] = []
_ROOTS: list[CodeType] = []
_MAX_CALL_DEPTH = 64


@dataclass
class Site:
    """One call of a primitive as it travels through the handler stack."""

    kind: int
    address: str
    name: str
    distribution: Optional[torch.distributions.Distribution]
    value: Any
    control: bool = True
    stage: Optional[tuple[Callable[..., Any], tuple[np.ndarray, ...]]] = None
    """For a stage call: the function and its inputs."""


class Handler:
    """Base class for handlers; use as a context manager to make it active.

    ``process`` runs innermost-first and may set ``site.value``; ``postprocess``
    runs outermost-first after the value is settled.
    """

    def __enter__(self) -> "Handler":
        _HANDLERS.append(self)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        _HANDLERS.remove(self)

    def process(self, site: Site) -> None:
        pass

    def postprocess(self, site: Site) -> None:
        pass


def _apply(site: Site) -> Site:
    for handler in reversed(_HANDLERS):
        handler.process(site)
    if site.value is None and site.kind == RECORD_SAMPLE:
        site.value = site.distribution.sample()
    elif site.value is None and site.kind == SITE_STAGE:
        site.value = run_stage(*site.stage)
    for handler in _HANDLERS:
        handler.postprocess(site)
    return site


def _call_path(frame: Any) -> str:
    """``outer/inner`` function names from the model root down to ``frame``."""
    roots = _ROOTS[-1:] if _ROOTS else ()
    names = []
    while frame is not None and len(names) < _MAX_CALL_DEPTH:
        code = frame.f_code
        names.append(getattr(code, "co_qualname", code.co_name))
        if code in roots:
            break
        frame = frame.f_back
    return "/".join(reversed(names))


def _address(name: Optional[str], address: Optional[str], caller_depth: int = 2) -> str:
    if address is None:
        address = name if name else _call_path(sys._getframe(caller_depth))
    return "/".join(_SCOPES + [address]) if _SCOPES else address


def sample(
    distribution: torch.distributions.Distribution,
    name: Optional[str] = None,
    *,
    control: bool = True,
    address: Optional[str] = None,
) -> torch.Tensor:
    """Draw a random choice; under an engine the engine decides its value.

    Args:
        distribution: a ``pyro.distributions`` instance of one of the PPX kinds.
        name: the variable's name; users condition on and read posteriors by it.
        control: False for choices the engine must always take from the prior
            (nuisance randomness such as detector noise).
        address: overrides the derived address (names and call structure).
    """
    site = Site(RECORD_SAMPLE, _address(name, address), name or "", distribution, None, control)
    return _apply(site).value


def observe(
    distribution: torch.distributions.Distribution,
    value: Any = None,
    name: Optional[str] = None,
    *,
    address: Optional[str] = None,
) -> Optional[torch.Tensor]:
    """Condition on data: the engine weighs traces by ``distribution``'s density at the observed value.

    ``value`` is what the simulator itself would report (optional); the engine
    substitutes the user's observation for ``name`` when one is given. A sparse
    value (``ppx.sparse.SparseArray`` or a torch sparse COO tensor) stays sparse:
    it travels as coordinates and values to engines with the ``sparse-tensor``
    extension, and as a dense tensor to others.
    """
    tensor = None if value is None else value if is_sparse(value) else torch.as_tensor(value)
    site = Site(RECORD_OBSERVE, _address(name, address), name or "", distribution, tensor)
    return _apply(site).value


def tag(value: Any, name: Optional[str] = None, *, address: Optional[str] = None) -> torch.Tensor:
    """Record a derived quantity in the trace so posteriors can be read for it."""
    site = Site(RECORD_TAG, _address(name, address), name or "", None, torch.as_tensor(value))
    return _apply(site).value


def run_stage(function: Callable[..., Any], inputs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Call a stage function and return its outputs as a tuple of float64 arrays."""
    outputs = function(*inputs)
    if not isinstance(outputs, (tuple, list)):
        outputs = (outputs,)
    return tuple(as_float64_array(output) for output in outputs)


def stage(name: str, function: Callable[..., Any], *inputs: Any) -> tuple[np.ndarray, ...]:
    """Run a named, replaceable stage of the simulator, such as a calorimeter shower.

    ``function(*inputs)`` returns one array or a tuple of arrays. Under an engine
    that negotiated the ``stage`` extension, the engine may answer with a
    surrogate's outputs instead (or record what the stage produced); otherwise
    the function simply runs. Always returns a tuple of float64 arrays.
    """
    arrays = tuple(as_float64_array(x) for x in inputs)
    site = Site(SITE_STAGE, name, name, None, None, stage=(function, arrays))
    return _apply(site).value


@contextlib.contextmanager
def scope(prefix: str) -> Iterator[None]:
    """Prefix the addresses of every site inside the block with ``prefix/``."""
    _SCOPES.append(prefix)
    try:
        yield
    finally:
        _SCOPES.pop()


def _pyro_sites_as_ppx() -> Any:
    from ppx.pyro_bridge import PyroToPPX  # pyro's handler machinery, only when models run

    return PyroToPPX()


def run_model(model: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``model`` with ``pyro.sample`` sites routed through PPX, making it the root of
    the call paths that name unnamed sites."""
    code = getattr(model, "__code__", None) or getattr(getattr(model, "__call__", None), "__code__", None)
    _ROOTS.append(code)
    saved_scopes = _SCOPES[:]
    _SCOPES.clear()
    try:
        with _pyro_sites_as_ppx():
            return model(*args, **kwargs)
    finally:
        _ROOTS.pop()
        _SCOPES[:] = saved_scopes
