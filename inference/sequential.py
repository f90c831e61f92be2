"""``run_many`` for simulators that run one trace at a time: in-process, or a single connection."""

from __future__ import annotations

import contextlib
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from inference.controllers import Controller
from inference.streams import Seed, Stream, job_seeds
from inference.trace import Trace


class OneTraceAtATime:
    """Mixin: ``run_many`` by calling the class's ``run(controller, observations)`` in turn."""

    def run(self, controller: Controller, observations: Optional[Mapping[str, np.ndarray]] = None) -> Trace:
        raise NotImplementedError

    def run_many(self, controllers: Sequence[Controller], observations: Optional[Mapping[str, np.ndarray]] = None,
                 on_done: Optional[Callable[[list[Trace]], None]] = None, seed: Seed = None) -> list[Trace]:
        """One trace per controller; ``on_done`` hears of each as it completes. The traces draw
        from torch's generator, or from a stream of their own when ``seed`` is given."""
        traces = []
        with Stream(job_seeds(1, seed)[0]) if seed is not None else contextlib.nullcontext():
            for controller in controllers:
                traces.append(self.run(controller, observations))
                if on_done is not None:
                    on_done(traces[-1:])
        return traces
