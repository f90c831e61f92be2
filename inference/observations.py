"""Observed data: parsed from the command line or a file, checked, and matched to the model.

Observations are a mapping from an ``observe`` statement's name to a float64
array, or to a ``ppx.sparse.SparseArray`` for a sparse image (a torch sparse COO
tensor is converted to one; an HDF5 group with ``coordinates``, ``values`` and
``shape`` datasets is read as one). Values must be finite, have the shape the
model observes under that name, and every name must be one the model observes.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import h5py
import numpy as np

from ppx.messages import RECORD_OBSERVE
from ppx.sparse import SparseArray, as_sparse_array, value_shape

log = logging.getLogger(__name__)


def as_observations(values: Mapping[str, Any] | None) -> dict[str, np.ndarray | SparseArray]:
    """Float64 arrays (``SparseArray``s for sparse values) for each observed name; non-numeric or
    non-finite values raise ``ValueError``."""
    observations: dict[str, np.ndarray | SparseArray] = {}
    for name, value in (values or {}).items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"observation names must be non-empty strings, got {name!r}")
        sparse = as_sparse_array(value)
        if sparse is not None:
            if not np.isfinite(sparse.values).all():
                raise ValueError(f"observation {name!r} holds NaN or infinite values: "
                                 f"{sparse.values[~np.isfinite(sparse.values)][:8].tolist()}")
            observations[name] = sparse
            continue
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"observation {name!r} has non-numeric value {value!r}") from err
        if not np.isfinite(array).all():
            raise ValueError(f"observation {name!r} holds NaN or infinite values: {np.ravel(array)[:8].tolist()}")
        observations[name] = array
    return observations


def parse_observe_argument(text: str) -> tuple[str, np.ndarray]:
    """``NAME=VALUE`` from the command line; VALUE is a number or a JSON list of numbers."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name or not value.strip():
        raise ValueError(f"--observe expects NAME=VALUE (e.g. obs0=8 or image=[[0,1],[2,3]]), got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise ValueError(f"--observe {name}: value {value!r} is neither a number nor a JSON list") from err
    return name, as_observations({name: parsed})[name]


def load_observation_file(path: str | Path) -> dict[str, np.ndarray]:
    """Observations from a JSON object, a NumPy ``.npz`` archive or an HDF5 file (one dataset per name)."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"observation file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".json":
        with path.open() as stream:
            try:
                content = json.load(stream)
            except json.JSONDecodeError as err:
                raise ValueError(f"observation file {path} is not valid JSON: {err}") from err
        if not isinstance(content, dict):
            raise ValueError(f"observation file {path} must hold a JSON object of name: value")
        return as_observations(content)
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except ValueError as err:  # numpy refusing to unpickle: object arrays, or a pickle named .npz
            raise ValueError(f"observation file {path} is not an archive of plain arrays ({err}); pickled "
                             f"objects are never loaded: save numeric arrays with numpy.savez") from err
        return as_observations(arrays)
    if suffix in (".h5", ".hdf5"):
        with h5py.File(path, "r") as file:
            return as_observations({name: _read_hdf5_observation(path, file[name]) for name in file
                                    if isinstance(file[name], h5py.Dataset) or _is_sparse_group(file[name])})
    raise ValueError(f"observation file {path}: expected .json, .npz or .h5, got {suffix or 'no suffix'}")


_SPARSE_PARTS = ("coordinates", "values", "shape")


def _is_sparse_group(item: Any) -> bool:
    return isinstance(item, h5py.Group) and all(isinstance(item.get(part), h5py.Dataset) for part in _SPARSE_PARTS)


def _read_hdf5_observation(path: Path, item: Any) -> Any:
    """A dataset's array, or the ``SparseArray`` in a group of ``coordinates``, ``values`` and ``shape``."""
    if isinstance(item, h5py.Dataset):
        return item[()]
    try:
        return SparseArray(item["coordinates"][()], item["values"][()], tuple(item["shape"][()].tolist()))
    except ValueError as err:
        raise ValueError(f"observation file {path}: sparse observation {item.name}: {err}") from err


def check_observed_shape(name: str, observed: Any, shape: Sequence[int], address: str) -> None:
    """Raise ``ValueError`` unless the user's value for ``name`` has the ``shape`` the model
    observes at ``address``; a single number is accepted where the model observes one element."""
    observed_shape = value_shape(observed)
    if observed_shape == tuple(shape) or (math.prod(observed_shape) == 1 and math.prod(shape) == 1):
        return
    raise ValueError(f"observation {name!r} has shape {list(observed_shape)}, but the model observes "
                     f"shape {list(shape)} there (address {address!r})")


class ObservedNames:
    """The names a run's traces observe, gathered as the traces arrive.

    A model may observe some names only in some traces, so a name is known to be
    wrong only once the run is over (``check``). Names missing from the first
    traces are logged at once, so that a long run with a misspelt name can be
    stopped early.
    """

    def __init__(self, observations: Mapping[str, Any]) -> None:
        self.observations = observations
        self.seen: set[str] = set()
        self._first = True

    def collect(self, traces: Iterable[Any]) -> None:
        """Note the names ``traces`` observe."""
        if self.observations:
            for trace in traces:
                self.seen.update(c.name for c in trace.choices if c.kind == RECORD_OBSERVE and c.name)

    def update(self, traces: Iterable[Any]) -> None:
        """Note the names the run's next traces observe; after the first, log names not seen yet."""
        self.collect(traces)
        if self._first and self.observations:
            self._first = False
            unseen = self._unseen()
            if unseen:
                log.warning("observed name(s) %s did not occur in the first traces; their observe statements "
                            "are named: %s (the run fails at the end if they never occur)",
                            ", ".join(map(repr, unseen)), ", ".join(sorted(self.seen)) or "none")

    def check(self) -> None:
        """Raise ``ValueError`` if an observation's name occurred in none of the traces."""
        unseen = self._unseen()
        if unseen:
            known = ", ".join(sorted(self.seen)) or "none"
            raise ValueError(f"observed name(s) {', '.join(map(repr, unseen))} do not occur in the model; "
                             f"its observe statements are named: {known}")

    def _unseen(self) -> list[str]:
        return sorted(set(self.observations) - self.seen)


def check_observed_names(traces: Iterable[Any], observations: Mapping[str, np.ndarray]) -> None:
    """Raise ``ValueError`` if an observation's name never occurs in the model's observe statements."""
    names = ObservedNames(observations)
    names.collect(traces)
    names.check()
