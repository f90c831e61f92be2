"""Traces on disk: the columns of ``ppx.batch.pack`` in HDF5, written atomically, read in slices.

The layout is language-neutral (no pickles; any HDF5 library can read it).
Version 1, every dataset one-dimensional, *n* traces, *r* records::

    /                     attrs: format = "ppx-traces", version = 1, model_name
    strings               UTF-8 variable-length strings (addresses and names)
    trace_offsets         int64 (n + 1): first record of each trace
    trace_param_offsets   int64 (n + 1): first parameter tensor of each trace
                          (derived from the records; lets a slice be read alone)
    kind                  uint8 (r): 0 sample, 1 observe, 2 tag
    address, name         int32 (r): indices into strings, name -1 for none
    distribution_type     uint8 (r): PPX distribution union id, 0 for tags
    control               uint8 (r)
    values/, params/      ragged tensors: data float64 (float32 in values/ and
    results/                params/ when written with precision float32),
                            offsets int64, shapes int32, shape_offsets int64
                            (see RaggedTensors)
                          and, once a group holds a sparse tensor, sparse uint8
                          (one flag per tensor), coordinates int32 and
                          coordinate_offsets int64: sparse observed images and
                          SparseNormal means keep only their nonzero entries
    log_weights           float64 (n), optional

A trace without a result is stored as an empty 1-D result (and so an empty
1-D result reads back as none). Not stored: whether an observe's value was
substituted by the engine (``Choice.observed``; the value itself is kept, and
reads back with ``observed=False``), the proposal density of a proposed
sample (``Choice.proposal_log_prob``; store log weights instead), and anything
cached on a ``Choice``.
Readers accept any integer or float dtypes for the columns and cast them.

Example:
    >>> with TraceWriter("prior.h5", model_name="gaussian") as writer:  # doctest: +SKIP
    ...     for chunk in chunks:
    ...         writer.write(chunk)
    >>> with TraceFile("prior.h5") as traces:                          # doctest: +SKIP
    ...     first_hundred = traces.read(0, 100)
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Optional, Sequence, Union

import h5py
import numpy as np

from inference.atomic_hdf5 import AtomicHDF5Writer
from inference.trace import Trace
from ppx.batch import Record, pack, unpack, validate
from ppx.errors import ProtocolError
from ppx.messages import RECORD_TAG, RaggedTensors, TraceBatch

logger = logging.getLogger(__name__)

FORMAT = "ppx-traces"
VERSION = 1

_CHUNK = 1 << 14
"""Elements per HDF5 chunk of the growable datasets."""

_INT, _FLOAT = "integer", "float"
_RECORD_COLUMNS = {"kind": np.uint8, "address": np.int32, "name": np.int32,
                   "distribution_type": np.uint8, "control": np.uint8}
_TRACE_COLUMNS = {"trace_offsets": np.int64, "trace_param_offsets": np.int64}
_RAGGED_COLUMNS = {"data": np.float64, "offsets": np.int64, "shapes": np.int32,
                   "shape_offsets": np.int64}
_RAGGED_GROUPS = ("values", "params", "results")
PRECISIONS = {"float64": np.float64, "float32": np.float32}
"""Element types ``values/data`` and ``params/data`` may be written in; results stay float64."""
_LEAN_GROUPS = ("values", "params")
_SPARSE_COLUMNS = {"sparse": np.uint8, "coordinates": np.int32, "coordinate_offsets": np.int64}
"""Present in a ragged group only once it holds a sparse tensor, so dense files keep the plain layout."""

PathLike = Union[str, os.PathLike]


# ---- Trace <-> Record ------------------------------------------------------------------

def trace_records(trace: Trace) -> list[Record]:
    """The records a trace was made of (see the module docstring for what is not kept)."""
    records = []
    for choice in trace.choices:
        if choice.kind != RECORD_TAG and choice.wire is None:
            raise ValueError(f"cannot store the choice at {choice.address!r}: it has no "
                             f"distribution")
        records.append(Record(choice.kind, choice.address, choice.name, choice.wire,
                              choice.value, choice.control))
    return records


def _param_count(records: Sequence[Record]) -> int:
    return sum(len(r.distribution.params) for r in records if r.distribution is not None)


# ---- writing ---------------------------------------------------------------------------

def _create_column(parent: h5py.Group, name: str, dtype: Any, compression: Optional[str],
                   initial: Optional[np.ndarray] = None) -> None:
    data = np.zeros(0, dtype) if initial is None else np.asarray(initial, dtype)
    parent.create_dataset(name, data=data, maxshape=(None,), chunks=(_CHUNK,),
                          compression=compression)


def _append(dataset: h5py.Dataset, values: np.ndarray) -> None:
    start = dataset.shape[0]
    if len(values):
        dataset.resize(start + len(values), axis=0)
        dataset[start:] = values


def _append_offsets(dataset: h5py.Dataset, offsets: np.ndarray, base: int) -> None:
    """Append a chunk's offsets (which start at 0) after the ``base`` entries already stored."""
    _append(dataset, np.asarray(offsets[1:], dtype=np.int64) + base)


def _append_sparse_columns(group: h5py.Group, ragged: RaggedTensors, compression: Optional[str]) -> None:
    """The sparse-tensor columns of a chunk; created (all dense so far) when the first sparse one arrives."""
    if "sparse" not in group:
        if not len(ragged.sparse):
            return
        stored = group["offsets"].shape[0] - 1
        _create_column(group, "sparse", np.uint8, compression, initial=np.zeros(stored))
        _create_column(group, "coordinates", np.int32, compression)
        _create_column(group, "coordinate_offsets", np.int64, compression, initial=np.zeros(stored + 1))
    if len(ragged.sparse):
        flags, coordinate_offsets = ragged.sparse, ragged.coordinate_offsets
    else:
        flags, coordinate_offsets = np.zeros(len(ragged), np.uint8), np.zeros(len(ragged) + 1, np.int64)
    _append_offsets(group["coordinate_offsets"], coordinate_offsets, group["coordinates"].shape[0])
    _append(group["coordinates"], ragged.coordinates)
    _append(group["sparse"], flags)


def _append_ragged(group: h5py.Group, ragged: RaggedTensors, compression: Optional[str]) -> None:
    _append_sparse_columns(group, ragged, compression)
    _append_offsets(group["offsets"], ragged.offsets, group["data"].shape[0])
    _append_offsets(group["shape_offsets"], ragged.shape_offsets, group["shapes"].shape[0])
    _append(group["data"], ragged.data)
    _append(group["shapes"], ragged.shapes)


class TraceWriter(AtomicHDF5Writer):
    """Writes traces to one HDF5 file in chunks; the file appears only when complete.

    Everything goes to a temporary file beside ``path``, renamed onto ``path``
    by ``close()`` (on leaving the ``with`` block). ``abort()``, or an
    exception inside the block, removes the temporary file and leaves ``path``
    untouched.

    Args:
        path: the file to create (an existing file is replaced on success).
        model_name: kept as the root attribute ``model_name``.
        compression: an h5py compression filter (``"gzip"``, ``"lzf"``) for the
            numeric datasets, or None.
        precision: ``"float64"`` or ``"float32"``, the element type of the sampled and
            observed values and the distribution parameters. float32 halves a tau trace
            (its image is noise, which no filter compresses) and loses nothing the IC
            network reads, which embeds observations in float32; values read back as
            float64, rounded to float32's 7 significant digits.
    """

    def __init__(self, path: PathLike, model_name: str = "", *,
                 compression: Optional[str] = None, precision: str = "float64") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"trace file precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self._strings: dict[str, int] = {}
        self._has_log_weights: Optional[bool] = None
        self._compression = compression
        self._precision = PRECISIONS[precision]
        super().__init__(path, lambda file: self._create_layout(file, model_name))

    def _create_layout(self, file: h5py.File, model_name: str) -> None:
        compression = self._compression
        file.attrs["format"] = FORMAT
        file.attrs["version"] = VERSION
        file.attrs["model_name"] = model_name
        file.create_dataset("strings", shape=(0,), maxshape=(None,), chunks=(1024,),
                            dtype=h5py.string_dtype("utf-8"))
        for name, dtype in _TRACE_COLUMNS.items():
            _create_column(file, name, dtype, compression, initial=[0])
        for name, dtype in _RECORD_COLUMNS.items():
            _create_column(file, name, dtype, compression)
        for group_name in _RAGGED_GROUPS:
            group = file.create_group(group_name)
            for name, dtype in _RAGGED_COLUMNS.items():
                if name == "data" and group_name in _LEAN_GROUPS:
                    dtype = self._precision
                initial = [0] if name.endswith("offsets") else None
                _create_column(group, name, dtype, compression, initial=initial)

    @property
    def num_traces(self) -> int:
        """Traces written so far."""
        if self._file is None:
            raise ValueError(f"trace writer for {self.path} is closed")
        return self._file["trace_offsets"].shape[0] - 1

    def write(self, traces: Sequence[Trace], log_weights: Optional[Sequence[float]] = None) -> None:
        """Append ``traces`` (and their log weights: give them with every chunk or never).

        Raises:
            ValueError: the writer is closed, the traces cannot be stored, or log
                weights are given for some chunks and not others.
        """
        if self._file is None:
            raise ValueError(f"trace writer for {self.path} is closed")
        if not traces:
            return
        self._check_log_weights(traces, log_weights)
        records = [trace_records(trace) for trace in traces]
        batch = pack(records, [trace.result for trace in traces])
        try:
            validate(batch)
        except ProtocolError as err:
            raise ValueError(f"cannot write these traces to {self.path}: {err}") from err
        self._append_batch(batch, np.fromiter((_param_count(r) for r in records),
                                              dtype=np.int64, count=len(records)))
        if self._has_log_weights is None:
            self._has_log_weights = log_weights is not None
            if self._has_log_weights:
                _create_column(self._file, "log_weights", np.float64, self._compression)
        if log_weights is not None:
            _append(self._file["log_weights"], np.asarray(log_weights, dtype=np.float64))

    def _check_log_weights(self, traces: Sequence[Trace],
                           log_weights: Optional[Sequence[float]]) -> None:
        given = log_weights is not None
        if given and np.shape(log_weights) != (len(traces),):
            raise ValueError(f"expected {len(traces)} log weights, one per trace, got shape "
                             f"{np.shape(log_weights)}")
        if self._has_log_weights is not None and given != self._has_log_weights:
            raise ValueError(f"log weights must come with every chunk written to {self.path} "
                             f"or with none; earlier chunks {'lacked' if given else 'had'} them")

    def _append_batch(self, batch: TraceBatch, params_per_trace: np.ndarray) -> None:
        file = self._file
        known = len(self._strings)
        to_global = np.fromiter((self._strings.setdefault(s, len(self._strings))
                                 for s in batch.strings), dtype=np.int32, count=len(batch.strings))
        _append(file["strings"], np.array(list(self._strings)[known:], dtype=object))
        num_records = file["kind"].shape[0]
        num_params = file["params/offsets"].shape[0] - 1
        _append_offsets(file["trace_offsets"], batch.trace_offsets, num_records)
        _append_offsets(file["trace_param_offsets"],
                        np.concatenate([[0], np.cumsum(params_per_trace)]), num_params)
        names = np.where(batch.name >= 0, to_global[np.maximum(batch.name, 0)], -1)
        columns = {"kind": batch.kind, "address": to_global[batch.address], "name": names,
                   "distribution_type": batch.distribution_type, "control": batch.control}
        for column, values in columns.items():
            _append(file[column], values)
        for group in _RAGGED_GROUPS:
            _append_ragged(file[group], getattr(batch, group), self._compression)


def write_traces(path: PathLike, traces: Sequence[Trace],
                 log_weights: Optional[Sequence[float]] = None, model_name: str = "", *,
                 compression: Optional[str] = None, precision: str = "float64") -> None:
    """Write ``traces`` to ``path`` in one go (see ``TraceWriter``)."""
    with TraceWriter(path, model_name, compression=compression, precision=precision) as writer:
        writer.write(traces, log_weights)


# ---- reading ---------------------------------------------------------------------------

def _check_column(file: h5py.File, name: str, kind: str, path: str) -> h5py.Dataset:
    dataset = file.get(name)
    if not isinstance(dataset, h5py.Dataset) or dataset.ndim != 1:
        raise ValueError(f"{path}: corrupt trace file: {name} is missing or not a 1-D dataset")
    expected = np.integer if kind == _INT else np.floating
    if not np.issubdtype(dataset.dtype, expected):
        raise ValueError(f"{path}: corrupt trace file: {name} holds {dataset.dtype}, "
                         f"expected {kind} numbers")
    return dataset


def _check_header(file: h5py.File, path: str) -> None:
    found = file.attrs.get("format")
    if isinstance(found, bytes):
        found = found.decode("utf-8", "replace")
    if found != FORMAT:
        raise ValueError(f"{path}: not a ppx trace file (root attribute format is {found!r}, "
                         f"expected {FORMAT!r})")
    version = file.attrs.get("version")
    if np.ndim(version) != 0 or version != VERSION:
        raise ValueError(f"{path}: trace file version {version}, this reader understands "
                         f"version {VERSION}")
    strings = file.get("strings")
    if not isinstance(strings, h5py.Dataset) or h5py.check_string_dtype(strings.dtype) is None:
        raise ValueError(f"{path}: corrupt trace file: strings is missing or not a string dataset")


def _check_lengths(file: h5py.File, path: str) -> None:
    def expect(name: str, length: int) -> None:
        if file[name].shape[0] != length:
            raise ValueError(f"{path}: corrupt trace file: {name} has {file[name].shape[0]} "
                             f"entries, expected {length}")

    num_traces = file["trace_offsets"].shape[0] - 1
    if num_traces < 0:
        raise ValueError(f"{path}: corrupt trace file: trace_offsets is empty")
    num_records = int(file["trace_offsets"][-1])
    for name in ("trace_param_offsets", "results/offsets", "results/shape_offsets"):
        expect(name, num_traces + 1)
    for name in _RECORD_COLUMNS:
        expect(name, num_records)
    for name in ("values/offsets", "values/shape_offsets"):
        expect(name, num_records + 1)
    expect("params/shape_offsets", file["params/offsets"].shape[0])
    for group in _RAGGED_GROUPS:
        if "sparse" in file[group]:
            expect(f"{group}/sparse", file[f"{group}/offsets"].shape[0] - 1)
            expect(f"{group}/coordinate_offsets", file[f"{group}/offsets"].shape[0])
    if "log_weights" in file:
        expect("log_weights", num_traces)


def _check_layout(file: h5py.File, path: str) -> None:
    _check_header(file, path)
    for name in (*_TRACE_COLUMNS, *_RECORD_COLUMNS):
        _check_column(file, name, _INT, path)
    for group in _RAGGED_GROUPS:
        for name, dtype in _RAGGED_COLUMNS.items():
            kind = _FLOAT if np.issubdtype(dtype, np.floating) else _INT
            _check_column(file, f"{group}/{name}", kind, path)
        present = [name for name in _SPARSE_COLUMNS if name in file[group]]
        if present and len(present) != len(_SPARSE_COLUMNS):
            raise ValueError(f"{path}: corrupt trace file: {group} has {', '.join(present)} but not all of "
                             f"{', '.join(_SPARSE_COLUMNS)}")
        for name in present:
            _check_column(file, f"{group}/{name}", _INT, path)
    if "log_weights" in file:
        _check_column(file, "log_weights", _FLOAT, path)
    _check_lengths(file, path)


def _span(offsets: np.ndarray, length: int, what: str, path: str) -> tuple[int, int]:
    """The stored range ``offsets`` covers, checked to lie inside ``length`` entries."""
    low, high = int(offsets[0]), int(offsets[-1])
    if not 0 <= low <= high <= length:
        raise ValueError(f"{path}: corrupt trace file: {what} point outside its {length} entries")
    return low, high


class TraceFile:
    """Reads a trace file written by ``TraceWriter``, a slice at a time.

    Opening checks the layout (format, version, datasets, lengths); every slice
    read is validated with ``ppx.batch`` before it becomes traces. A
    ``TraceFile`` pickles as its path, so DataLoader workers reopen it.

    Raises:
        ValueError: naming the file and the problem, for a file that is missing,
            not HDF5, not a trace file, of another version, or corrupt.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = os.fspath(path)
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:
            raise ValueError(f"{self.path}: cannot open as an HDF5 trace file ({err})") from err
        try:
            _check_layout(self._file, self.path)
            self._strings = tuple(self._file["strings"].asstr()[...].tolist())
        except BaseException:
            self._file.close()
            raise
        self.model_name = str(self._file.attrs.get("model_name", ""))
        self._num_records = self._file["kind"].shape[0]

    def __len__(self) -> int:
        return self._file["trace_offsets"].shape[0] - 1

    @property
    def num_traces(self) -> int:
        return len(self)

    @property
    def has_log_weights(self) -> bool:
        return "log_weights" in self._file

    def _bounds(self, start: int, stop: Optional[int]) -> tuple[int, int]:
        start, stop, _ = slice(start, stop).indices(len(self))
        return start, max(start, stop)

    def log_weights(self, start: int = 0, stop: Optional[int] = None) -> Optional[np.ndarray]:
        """Log weights of traces [start, stop), or None when the file has none."""
        if not self.has_log_weights:
            return None
        start, stop = self._bounds(start, stop)
        return np.asarray(self._file["log_weights"][start:stop], dtype=np.float64)

    def read_batch(self, start: int = 0, stop: Optional[int] = None) -> TraceBatch:
        """Traces [start, stop) as a validated ``TraceBatch`` (global string table)."""
        batch = self._read_columns(*self._bounds(start, stop))
        try:
            validate(batch)
        except ProtocolError as err:
            raise ValueError(f"{self.path}: corrupt trace file: {err}") from err
        return batch

    def read(self, start: int = 0, stop: Optional[int] = None) -> list[Trace]:
        """Traces [start, stop) (Python slice rules), reading only their part of the file."""
        start, stop = self._bounds(start, stop)
        try:
            unpacked = unpack(self._read_columns(start, stop))
        except ProtocolError as err:
            raise ValueError(f"{self.path}: corrupt trace file in traces [{start}, {stop}): "
                             f"{err}") from err
        return [Trace.from_records(records, result) for records, result in unpacked]

    def _read_columns(self, start: int, stop: int) -> TraceBatch:
        file, path = self._file, self.path
        trace_offsets = np.asarray(file["trace_offsets"][start:stop + 1], dtype=np.int64)
        param_offsets = np.asarray(file["trace_param_offsets"][start:stop + 1], dtype=np.int64)
        r0, r1 = _span(trace_offsets, self._num_records, "trace_offsets", path)
        p0, p1 = _span(param_offsets, file["params/offsets"].shape[0] - 1,
                       "trace_param_offsets", path)
        columns = {name: np.asarray(file[name][r0:r1], dtype=dtype)
                   for name, dtype in _RECORD_COLUMNS.items()}
        return TraceBatch(
            strings=self._strings, trace_offsets=trace_offsets - r0, **columns,
            values=self._read_ragged("values", r0, r1),
            params=self._read_ragged("params", p0, p1),
            results=self._read_ragged("results", start, stop))

    def _read_ragged(self, group_name: str, low: int, high: int) -> RaggedTensors:
        group = self._file[group_name]
        offsets = np.asarray(group["offsets"][low:high + 1], dtype=np.int64)
        shape_offsets = np.asarray(group["shape_offsets"][low:high + 1], dtype=np.int64)
        d0, d1 = _span(offsets, group["data"].shape[0], f"{group_name}/offsets", self.path)
        s0, s1 = _span(shape_offsets, group["shapes"].shape[0], f"{group_name}/shape_offsets",
                       self.path)
        ragged = RaggedTensors(np.asarray(group["data"][d0:d1], dtype=np.float64), offsets - d0,
                               np.asarray(group["shapes"][s0:s1], dtype=np.int32),
                               shape_offsets - s0)
        return ragged if "sparse" not in group else self._with_sparse_columns(group, ragged, low, high)

    def _with_sparse_columns(self, group: h5py.Group, ragged: RaggedTensors, low: int,
                             high: int) -> RaggedTensors:
        coordinate_offsets = np.asarray(group["coordinate_offsets"][low:high + 1], dtype=np.int64)
        c0, c1 = _span(coordinate_offsets, group["coordinates"].shape[0],
                       f"{group.name.lstrip('/')}/coordinate_offsets", self.path)
        return dataclasses.replace(
            ragged, sparse=np.asarray(group["sparse"][low:high], dtype=np.uint8),
            coordinates=np.asarray(group["coordinates"][c0:c1], dtype=np.int32),
            coordinate_offsets=coordinate_offsets - c0)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "TraceFile":
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, str]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__init__(state["path"])


def read_traces(path: PathLike, start: int = 0, stop: Optional[int] = None) -> list[Trace]:
    """Traces [start, stop) of the trace file at ``path`` (all of them by default)."""
    with TraceFile(path) as traces:
        return traces.read(start, stop)


__all__ = ["FORMAT", "PRECISIONS", "VERSION", "TraceFile", "TraceWriter", "read_traces", "trace_records",
           "write_traces"]
