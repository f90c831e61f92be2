"""``run_many`` for simulators that run one trace at a time: in-process, or a single connection."""

from __future__ import annotations

from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from inference.controllers import Controller
from inference.trace import Trace


class OneTraceAtATime:
    """Mixin: ``run_many`` by calling the class's ``run(controller, observations)`` in turn."""

    def run(self, controller: Controller, observations: Optional[Mapping[str, np.ndarray]] = None) -> Trace:
        raise NotImplementedError

    def run_many(self, controllers: Sequence[Controller], observations: Optional[Mapping[str, np.ndarray]] = None,
                 on_done: Optional[Callable[[list[Trace]], None]] = None) -> list[Trace]:
        """One trace per controller; ``on_done`` hears of each as it completes."""
        traces = []
        for controller in controllers:
            traces.append(self.run(controller, observations))
            if on_done is not None:
                on_done(traces[-1:])
        return traces
