"""Run a Python model in the engine's own process, with the same interface as a remote simulator.

The engine's handler answers each ``sample`` with its controller's choice and
records the trace directly, so in-process and remote inference share every
algorithm. This is also the baseline the PPX benchmarks compare against.
"""

from __future__ import annotations

from typing import Any, Callable, Optional


from inference.controllers import PRIOR, Controller, draw_from_prior
from inference.observations import check_observed_shape
from inference.remote import Observations, Stages
from inference.sequential import OneTraceAtATime
from inference.streams import Seed
from inference.trace import StageCall, Trace
from ppx.distributions import as_float64_array, as_wire_value, kind_of
from ppx.messages import RECORD_OBSERVE, RECORD_SAMPLE, SITE_STAGE
from ppx.runtime import Handler, Site, run_model, run_stage
from ppx.simulator import as_result_array, value_tensor
from ppx.sparse import value_shape


class _Control(Handler):
    def __init__(self, controller: Controller, observations: Observations, stages: Stages) -> None:
        self.controller = controller
        self.observations = observations
        self.stages = stages
        self.trace = Trace()

    def process(self, site: Site) -> None:
        trace = self.trace
        if site.kind == RECORD_SAMPLE:
            distribution = site.distribution
            if site.control:
                key = f"{site.address}__{kind_of(distribution).name}__{trace.next_instance(site.address)}"
                value, proposal_log_prob = self.controller.choose(trace, key, site.name, distribution)
            else:
                value, proposal_log_prob = draw_from_prior(distribution), None
            site.value = value_tensor(value, distribution)
            trace.add(RECORD_SAMPLE, site.address, site.name, value, distribution=distribution,
                      control=site.control, proposal_log_prob=proposal_log_prob)
        elif site.kind == RECORD_OBSERVE:
            observed = self.observations.get(site.name) if site.name else None
            if observed is not None:
                distribution = site.distribution
                shape = distribution.batch_shape + distribution.event_shape if site.value is None \
                    else value_shape(site.value)
                check_observed_shape(site.name, observed, shape, site.address)
                value = observed
            elif site.value is not None:
                value = as_wire_value(site.value)
            else:
                value = draw_from_prior(site.distribution)
            trace.add(RECORD_OBSERVE, site.address, site.name, value, distribution=site.distribution,
                      observed=observed is not None)
        elif site.kind == SITE_STAGE:
            surrogate = self.stages.get(site.name)
            function, inputs = site.stage
            site.value = run_stage(surrogate, (inputs,)) if surrogate else run_stage(function, inputs)
            trace.stages.append(StageCall(site.name, inputs, site.value, surrogate=surrogate is not None))
        else:
            trace.add(site.kind, site.address, site.name, as_float64_array(site.value))


class LocalSimulator(OneTraceAtATime):
    """A Python model run in this process (no sockets).

    Args:
        model: a function of no arguments using ``ppx.sample``/``observe``/``tag``.
        stages: surrogates by stage name, replacing the model's ``ppx.stage`` calls.
    """

    def __init__(self, model: Callable[[], Any], stages: Optional[Stages] = None) -> None:
        self.model = model
        self.model_name = getattr(model, "__name__", "model")
        self.stages = dict(stages or {})

    def run(self, controller: Controller = PRIOR, observations: Optional[Observations] = None) -> Trace:
        with _Control(controller, observations or {}, self.stages) as handler:
            result = run_model(self.model)
        handler.trace.result = as_result_array(result)
        return handler.trace

    def prior(self, num_traces: int, observations: Optional[Observations] = None, batch_size: int = 64,
              on_done: Optional[Callable[[list[Trace]], None]] = None, seed: Seed = None) -> list[Trace]:
        return self.run_many([PRIOR] * num_traces, observations, on_done, seed)

    def close(self) -> None:
        pass

    def __enter__(self) -> "LocalSimulator":
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass
