"""Observed data: parsed from the command line or a file, checked, and matched to the model.

Observations are a mapping from an ``observe`` statement's name to a float64
array, or to a ``ppx.sparse.SparseArray`` for a sparse image (a torch sparse COO
tensor is converted to one; an HDF5 group with ``coordinates``, ``values`` and
``shape`` datasets is read as one). Values must be finite, and every name must
be one the model observes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import h5py
import numpy as np

from ppx.messages import RECORD_OBSERVE
from ppx.sparse import SparseArray, as_sparse_array


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
        with np.load(path, allow_pickle=False) as archive:
            return as_observations({name: archive[name] for name in archive.files})
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


def check_observed_names(traces: Iterable[Any], observations: Mapping[str, np.ndarray]) -> None:
    """Raise ``ValueError`` if an observation's name never occurs in the model's observe statements."""
    if not observations:
        return
    seen: set[str] = set()
    for trace in traces:
        seen.update(c.name for c in trace.choices if c.kind == RECORD_OBSERVE and c.name)
    unknown = sorted(set(observations) - seen)
    if unknown:
        known = ", ".join(sorted(seen)) or "none"
        raise ValueError(f"observed name(s) {', '.join(map(repr, unknown))} do not occur in the model; "
                         f"its observe statements are named: {known}")
