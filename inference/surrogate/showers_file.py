"""Showers on disk in the community HDF5 layout, written atomically and read whole or in slices.

The layout follows the calorimeter-challenge files (``incident_energies`` and
``showers``) and adds the particle kind and the geometry. Version 1, *n* showers
of *c* cells::

    /                  attrs: format = "ppx-showers", version = 1, energy_unit,
                       layer_shapes (L x 2 int), extent_mm (2 floats),
                       kind_names (strings), source
    incident_energies  float64 (n, 1)
    particle_kind      int64 (n, 1): index into kind_names
    showers            float32 (n, c): cell energies, layers flattened front to back

Files without the ``ppx-showers`` attributes (a challenge file, say) are read
too: 504 cells mean the CaloGAN geometry, and a missing ``particle_kind`` reads
as one kind.

Example:
    >>> with ShowerWriter("showers.h5", kind_names=("e-", "gamma", "pi+")) as writer:  # doctest: +SKIP
    ...     writer.write(kinds, energies, showers)
    >>> data = read_showers("showers.h5")                                            # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import h5py
import numpy as np

from inference.atomic_hdf5 import AtomicHDF5Writer
from inference.surrogate.geometry import CALOGAN, Geometry

FORMAT = "ppx-showers"
VERSION = 1

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class ShowerData:
    """Showers with their conditions, in memory.

    Attributes:
        kinds: (N,) int64 particle kind of each shower (index into ``kind_names``).
        energies: (N,) float64 incident energies.
        showers: (N, cells) float32 cell energies, in the unit of ``energies``.
        geometry: the calorimeter layout of the cells.
        kind_names: the name of each particle kind.
        energy_unit: the unit of energies and cell energies.
        source: where the showers came from (a model name, ``surrogate``).
    """

    kinds: np.ndarray
    energies: np.ndarray
    showers: np.ndarray
    geometry: Geometry = CALOGAN
    kind_names: tuple[str, ...] = ("particle",)
    energy_unit: str = "GeV"
    source: str = ""

    def __post_init__(self) -> None:
        kinds = np.asarray(self.kinds).reshape(-1).astype(np.int64)
        energies = np.asarray(self.energies, dtype=np.float64).reshape(-1)
        showers = np.asarray(self.showers, dtype=np.float32)
        self.geometry.check(showers)
        if not len(kinds) == len(energies) == len(showers):
            raise ValueError(f"kinds, energies and showers differ in length: "
                             f"{len(kinds)}, {len(energies)}, {len(showers)}")
        if len(kinds) and (kinds.min() < 0 or kinds.max() >= len(self.kind_names)):
            raise ValueError(f"particle kinds must lie in 0..{len(self.kind_names) - 1} "
                             f"(kind_names {self.kind_names}), got {kinds.min()}..{kinds.max()}")
        object.__setattr__(self, "kinds", kinds)
        object.__setattr__(self, "energies", energies)
        object.__setattr__(self, "showers", showers)
        object.__setattr__(self, "kind_names", tuple(str(name) for name in self.kind_names))

    def __len__(self) -> int:
        return len(self.kinds)

    def subset(self, index: Any) -> "ShowerData":
        """The showers at ``index`` (a slice, mask or index array), same metadata."""
        return ShowerData(self.kinds[index], self.energies[index], self.showers[index], self.geometry,
                          self.kind_names, self.energy_unit, self.source)


class ShowerWriter(AtomicHDF5Writer):
    """Appends showers to an HDF5 file that appears at ``path`` only when complete.

    Everything goes to a temporary file beside ``path``, renamed onto it by
    ``close()`` (on leaving the ``with`` block without an exception). ``abort()``,
    or an exception in the block, removes the temporary file and leaves ``path`` as it was.

    Args:
        path: the file to create (an existing one is replaced on success).
        geometry: the layout of the cells.
        kind_names: the name of each particle kind.
        energy_unit: the unit of incident and cell energies.
        source: what produced the showers.
        compression: an h5py filter for the showers (``"gzip"``, ``"lzf"``) or None.
    """

    def __init__(self, path: PathLike, *, geometry: Geometry = CALOGAN,
                 kind_names: Sequence[str] = ("particle",), energy_unit: str = "GeV", source: str = "",
                 compression: Optional[str] = "gzip") -> None:
        self.geometry = geometry
        self.kind_names = tuple(kind_names)

        def layout(file: h5py.File) -> None:
            attrs = file.attrs
            attrs["format"], attrs["version"] = FORMAT, VERSION
            attrs["energy_unit"], attrs["source"] = energy_unit, source
            attrs["layer_shapes"] = np.asarray(geometry.layer_shapes, dtype=np.int64)
            attrs["extent_mm"] = np.asarray(geometry.extent_mm, dtype=np.float64)
            attrs["kind_names"] = list(self.kind_names)
            cells, rows = geometry.num_cells, max(1, min(1024, (1 << 20) // (4 * geometry.num_cells)))
            file.create_dataset("incident_energies", shape=(0, 1), maxshape=(None, 1),
                                dtype=np.float64, chunks=(1 << 14, 1))
            file.create_dataset("particle_kind", shape=(0, 1), maxshape=(None, 1),
                                dtype=np.int64, chunks=(1 << 14, 1))
            file.create_dataset("showers", shape=(0, cells), maxshape=(None, cells),
                                dtype=np.float32, chunks=(rows, cells), compression=compression)

        super().__init__(path, layout)

    @property
    def num_showers(self) -> int:
        if self._file is None:
            raise ValueError(f"shower writer for {self.path} is closed")
        return self._file["showers"].shape[0]

    def write(self, kinds: Any, energies: Any, showers: Any) -> None:
        """Append a chunk of showers with their particle kinds and incident energies.

        Raises:
            ValueError: the writer is closed, or the arrays disagree with each
                other, the geometry or the kind names.
        """
        if self._file is None:
            raise ValueError(f"shower writer for {self.path} is closed")
        chunk = ShowerData(kinds, energies, showers, self.geometry, self.kind_names)
        start, stop = self.num_showers, self.num_showers + len(chunk)
        for name, column in (("incident_energies", chunk.energies[:, None]),
                             ("particle_kind", chunk.kinds[:, None]), ("showers", chunk.showers)):
            dataset = self._file[name]
            dataset.resize(stop, axis=0)
            dataset[start:stop] = column


def write_showers(path: PathLike, data: ShowerData, *, compression: Optional[str] = "gzip") -> None:
    """Write ``data`` to ``path`` atomically."""
    with ShowerWriter(path, geometry=data.geometry, kind_names=data.kind_names,
                      energy_unit=data.energy_unit, source=data.source, compression=compression) as writer:
        writer.write(data.kinds, data.energies, data.showers)


def read_showers(path: PathLike, start: int = 0, stop: Optional[int] = None) -> ShowerData:
    """Read showers ``start:stop`` (all by default) from a file in the layout above.

    Raises:
        ValueError: the file lacks the datasets, or its geometry cannot be told.
        OSError: the file cannot be opened as HDF5.
    """
    path = os.fspath(path)
    try:
        file = h5py.File(path, "r")
    except OSError as err:
        raise OSError(f"{path}: cannot open as an HDF5 shower file ({err})") from err
    with file:
        missing = [name for name in ("incident_energies", "showers") if name not in file]
        if missing:
            raise ValueError(f"{path} is not a shower file: it has no dataset {', '.join(missing)} "
                             f"(found {', '.join(file.keys()) or 'nothing'})")
        attrs = file.attrs
        version = int(attrs.get("version", VERSION))
        if attrs.get("format") == FORMAT and version > VERSION:
            raise ValueError(f"{path} is a version {version} shower file; this reader knows "
                             f"versions up to {VERSION}")
        cells = file["showers"].shape[1]
        if "layer_shapes" in attrs:
            geometry = Geometry(tuple(tuple(shape) for shape in np.asarray(attrs["layer_shapes"]).tolist()),
                                tuple(np.asarray(attrs.get("extent_mm", CALOGAN.extent_mm)).tolist()))
        elif cells == CALOGAN.num_cells:
            geometry = CALOGAN
        else:
            raise ValueError(f"{path}: showers have {cells} cells and the file names no layer_shapes; "
                             f"only {CALOGAN.num_cells}-cell (CaloGAN) files can be read without them")
        showers = file["showers"][start:stop]
        energies = file["incident_energies"][start:stop]
        if "particle_kind" in file:
            kinds, kind_names = file["particle_kind"][start:stop], _strings(attrs.get("kind_names"))
        else:
            kinds, kind_names = np.zeros(len(showers), dtype=np.int64), ()
        if not kind_names:
            kind_names = tuple(f"kind{index}" for index in range(int(np.max(kinds, initial=0)) + 1))
        return ShowerData(kinds, energies, showers, geometry, kind_names,
                          str(attrs.get("energy_unit", "MeV" if attrs.get("format") != FORMAT else "GeV")),
                          str(attrs.get("source", "")))


def _strings(values: Any) -> tuple[str, ...]:
    if values is None:
        return ()
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(values))
