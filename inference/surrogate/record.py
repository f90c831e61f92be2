"""Record a shower stage through the engine: prior traces in, (kind, energy, shower) rows out, to HDF5.

The stage is any simulator the engine can run (in-process ``LocalSimulator``,
a ``RemoteSimulator`` or a ``SimulatorPool``) whose traces name the particle
kind and the incident energy and tag each calorimeter layer. The defaults are
the names of the bundled CaloGAN-geometry stage (``simulators.calorimeter``):
samples ``kind`` (0 electron, 1 photon, 2 charged pion) and ``energy`` (GeV),
tags ``layer0`` (3 x 96), ``layer1`` (12 x 12) and ``layer2`` (12 x 6).

Example:
    >>> from inference import LocalSimulator                               # doctest: +SKIP
    >>> from simulators.calorimeter import model                           # doctest: +SKIP
    >>> record_showers(LocalSimulator(model), 10_000, "showers.h5")         # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Sequence, Union

import numpy as np
from tqdm.auto import tqdm

from inference.surrogate.geometry import CALOGAN, Geometry
from inference.surrogate.showers_file import ShowerWriter
from inference.trace import Trace

log = logging.getLogger(__name__)

CALORIMETER_KINDS = ("electron", "photon", "pion")
"""Particle kinds of ``simulators.calorimeter``, by their number."""
CALORIMETER_LAYERS = ("layer0", "layer1", "layer2")

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class TraceNames:
    """Where a trace keeps the stage's input and output.

    Attributes:
        kind: the sample (or tag) holding the particle kind's number.
        energy: the sample (or tag) holding the incident energy.
        layers: the tags holding each layer's cells, front to back.
    """

    kind: str = "kind"
    energy: str = "energy"
    layers: tuple[str, ...] = CALORIMETER_LAYERS


@dataclass(frozen=True)
class RecordResult:
    """What ``record_showers`` wrote: ``num_showers`` rows to ``path`` in ``seconds``; ``dropped``
    traces were lost to crashed or hung simulators and run again."""

    path: str
    num_showers: int
    seconds: float
    dropped: int = 0

    @property
    def showers_per_second(self) -> float:
        return self.num_showers / self.seconds if self.seconds > 0 else float("inf")


def showers_from_traces(traces: Sequence[Trace], names: TraceNames = TraceNames(),
                        geometry: Geometry = CALOGAN) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The particle kinds (N,), incident energies (N,) and flattened showers (N, cells) in traces.

    Raises:
        ValueError: a trace lacks one of the names, or a layer has the wrong number of cells.
    """
    if len(names.layers) != geometry.num_layers:
        raise ValueError(f"expected {geometry.num_layers} layer tags for layers {geometry.layer_shapes}, "
                         f"got {names.layers}")
    kinds = np.empty(len(traces), dtype=np.int64)
    energies = np.empty(len(traces), dtype=np.float64)
    showers = np.empty((len(traces), geometry.num_cells), dtype=np.float32)
    for row, trace in enumerate(traces):
        kinds[row] = int(_value(trace, names.kind).reshape(-1)[0])
        energies[row] = float(_value(trace, names.energy).reshape(-1)[0])
        for name, part, size in zip(names.layers, geometry.layer_slices, geometry.layer_sizes):
            cells = _value(trace, name).reshape(-1)
            if cells.size != size:
                raise ValueError(f"tag {name!r} has {cells.size} cells; the geometry's layer has {size} "
                                 f"(layers {geometry.layer_shapes})")
            showers[row, part] = cells
    return kinds, energies, showers


def _value(trace: Trace, name: str) -> np.ndarray:
    choice = trace.named(name)
    if choice is None:
        present = sorted({c.name for c in trace.choices if c.name})
        raise ValueError(f"the simulator's trace has no choice named {name!r} (it has {present}); "
                         f"name the kind, energy and layer sites with TraceNames")
    return np.asarray(choice.value)


def record_showers(simulator: Any, num_showers: int, path: PathLike, *, names: TraceNames = TraceNames(),
                   geometry: Geometry = CALOGAN, kind_names: Sequence[str] = CALORIMETER_KINDS,
                   energy_unit: str = "GeV", chunk: int = 1000, batch_size: int = 64,
                   progress: bool = True) -> RecordResult:
    """Run ``simulator`` from its prior ``num_showers`` times and write the showers to ``path``.

    The file appears only once complete (see ``ShowerWriter``); an error or an
    interrupt leaves ``path`` as it was.

    Args:
        simulator: anything with the engine's ``prior(n, observations, batch_size, on_done)``.
        num_showers: how many showers to record.
        path: the HDF5 file to write.
        names: the trace names of kind, energy and layers.
        geometry: the layout of the layers.
        kind_names: the name of each particle kind number.
        energy_unit: the unit of the energies in the traces.
        chunk: traces drawn (and written) at a time.
        batch_size: traces per message for simulators that send whole traces.
        progress: show a progress bar.
    """
    if num_showers < 1:
        raise ValueError(f"num_showers must be at least 1, got {num_showers}")
    path = os.fspath(path)
    started = time.perf_counter()
    with ShowerWriter(path, geometry=geometry, kind_names=kind_names, energy_unit=energy_unit,
                      source=getattr(simulator, "model_name", "")) as writer, \
            tqdm(total=num_showers, disable=not progress, unit="shower", desc="record") as bar:
        for start in range(0, num_showers, chunk):
            traces = simulator.prior(min(chunk, num_showers - start), None, batch_size=batch_size,
                                     on_done=lambda done: bar.update(len(done)))
            writer.write(*showers_from_traces(traces, names, geometry))
    seconds = time.perf_counter() - started
    result = RecordResult(path, num_showers, seconds, int(getattr(simulator, "dropped", 0)))
    log.info("recorded %d showers in %.1f s (%.0f/s) to %s", num_showers, seconds, result.showers_per_second, path)
    return result
