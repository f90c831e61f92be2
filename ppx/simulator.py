"""Serve an instrumented model to a PPX engine: the simulator end of the protocol.

``serve(model, address)`` binds a REP socket and answers the engine: a Handshake
with the model's name and our capabilities, each Run by running the model once
with every ``sample``/``observe``/``tag`` forwarded to the engine, and, when the
engine negotiated the ``trace-batch`` extension, a Run for many prior traces by
running the model locally and replying with all of them in one ``TraceBatch``
(its values drawn from torch's generator, seeded first when the Run carries a seed).
Sparse observed values and ``SparseNormal`` distributions go to the engine as
they are when it negotiated the ``sparse-tensor`` extension, and densified (a
plain Tensor, a Normal) otherwise.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any, Callable, Optional

import numpy as np
import torch

from ppx import fastcodec
from ppx import messages as m
from ppx.batch import Record, pack
from ppx.curve import KeyDirectory
from ppx.distributions import as_float64_array, as_wire_value, kind_of, to_plain_wire, to_wire
from ppx.errors import ProtocolError
from ppx.limits import MAX_BATCH_TRACES
from ppx.runtime import Handler, Site, run_model, run_stage
from ppx.sparse import densified
from ppx.transport import DEFAULT_ADDRESS, Listener

log = logging.getLogger(__name__)

CAPABILITIES = (m.CAPABILITY_TRACE_BATCH, m.CAPABILITY_ERROR, m.CAPABILITY_STAGE, m.CAPABILITY_SPARSE)


def as_result_array(value: Any) -> Optional[np.ndarray]:
    """The model's return value as a float64 array for RunResult, or None if it is not numeric."""
    if value is None:
        return None
    try:
        return as_float64_array(value)
    except (TypeError, ValueError):
        return None


def value_tensor(value: np.ndarray, distribution: torch.distributions.Distribution) -> torch.Tensor:
    """A value from the wire in the dtype the distribution's own samples have."""
    kind = kind_of(distribution)
    tensor = torch.from_numpy(value)
    if kind.name == "Categorical":
        return tensor.long()
    dtype = getattr(distribution, kind.pyro_params[0]).dtype
    return tensor if tensor.dtype == dtype else tensor.to(dtype)


def wire_distribution(distribution: torch.distributions.Distribution, sparse: bool) -> m.WireDistribution:
    """``distribution`` as sent to an engine that did (``sparse``) or did not negotiate ``sparse-tensor``."""
    type_id, params = to_wire(distribution)
    return m.WireDistribution(type_id, params) if sparse else m.WireDistribution(*to_plain_wire(type_id, params))


class _Restart(Exception):
    """The engine abandoned the current trace; carries the request that interrupted it."""

    def __init__(self, request: m.Message) -> None:
        super().__init__(type(request).__name__)
        self.request = request


class _Forward(Handler):
    """Forwards each site to the engine over the socket and takes the engine's value."""

    def __init__(self, listener: Listener, capabilities: frozenset[str], frames: fastcodec.ScalarFrames) -> None:
        self.listener = listener
        self.offers_stages = m.CAPABILITY_STAGE in capabilities
        self.sends_sparse = m.CAPABILITY_SPARSE in capabilities
        self.frames = frames

    def _exchange(self, message: m.Message | bytes, expected: type) -> m.Message:
        self.listener.reply(message if isinstance(message, bytes) else fastcodec.encode(message))
        request = fastcodec.decode(self.listener.receive())
        if not isinstance(request, expected):
            raise _Restart(request)
        return request

    def process(self, site: Site) -> None:
        if site.kind == m.RECORD_SAMPLE:
            reply = self._exchange(self._choice_frame(site), m.SampleResult)
            site.value = value_tensor(reply.result, site.distribution)
        elif site.kind == m.RECORD_OBSERVE:
            self._exchange(self._choice_frame(site), m.ObserveResult)
        elif site.kind == m.SITE_STAGE:
            if self.offers_stages:
                site.value = self._offer_stage(site)
        else:
            self._exchange(m.Tag(site.address, site.name, as_float64_array(site.value)), m.TagResult)

    def _choice_frame(self, site: Site) -> bytes:
        """The Sample or Observe frame for ``site``, filled in from the site's earlier frame
        when all its tensors are float scalars (most sites of most simulators)."""
        distribution = site.distribution
        kind = kind_of(distribution)
        tensors = [getattr(distribution, name) for name in kind.pyro_params]
        if site.value is not None:
            tensors.append(site.value)
        for tensor in tensors:
            if not (isinstance(tensor, torch.Tensor) and tensor.dim() == 0 and tensor.is_floating_point()):
                return fastcodec.encode(self._choice_message(site))
        key = (site.kind, site.address, site.name, kind.type_id, site.control, site.value is None, self.sends_sparse)
        return self.frames.frame(key, [tensor.item() for tensor in tensors], lambda: self._choice_message(site))

    def _choice_message(self, site: Site) -> m.Sample | m.Observe:
        if site.kind == m.RECORD_SAMPLE:
            return m.Sample(site.address, site.name, m.WireDistribution(*to_wire(site.distribution)), site.control)
        wire = wire_distribution(site.distribution, self.sends_sparse)
        value = None if site.value is None else as_wire_value(site.value)
        if not self.sends_sparse:
            value = densified(value)
        return m.Observe(site.address, site.name, wire, value)

    def _offer_stage(self, site: Site) -> tuple[np.ndarray, ...]:
        function, inputs = site.stage
        reply = self._exchange(m.StageRequest(site.name, inputs), m.StageResult)
        if not reply.run_locally:
            return reply.outputs
        outputs = run_stage(function, inputs)
        self._exchange(m.StageOutput(site.name, outputs), m.StageOutputResult)
        return outputs


class _Record(Handler):
    """Records each site of a locally sampled prior trace; observations are simulated.

    Sparse observed values and distributions are kept sparse when ``sparse``, else densified.
    """

    def __init__(self, sparse: bool = True) -> None:
        self.records: list[Record] = []
        self.sparse = sparse

    def process(self, site: Site) -> None:
        if site.kind == m.RECORD_OBSERVE and site.value is None:
            site.value = site.distribution.sample()

    def postprocess(self, site: Site) -> None:
        if site.kind == m.SITE_STAGE:
            return
        wire = None if site.distribution is None else wire_distribution(site.distribution, self.sparse)
        value = as_wire_value(site.value) if site.kind == m.RECORD_OBSERVE else as_float64_array(site.value)
        self.records.append(Record(site.kind, site.address, site.name, wire,
                                   value if self.sparse else densified(value), site.control))


def record_prior_trace(model: Callable[[], Any], sparse: bool = True) -> tuple[list[Record], Optional[np.ndarray]]:
    """Run ``model`` once in this process, sampling from the prior, and return its records.

    ``sparse=False`` densifies sparse observed values and distributions, for engines
    without the ``sparse-tensor`` extension.
    """
    with _Record(sparse) as recorder:
        result = run_model(model)
    return recorder.records, as_result_array(result)


class _Session:
    """State of one served simulator: its socket, model and what the engine negotiated."""

    def __init__(self, model: Callable[[], Any], listener: Listener, model_name: str,
                 system_name: str, offered: tuple[str, ...] = CAPABILITIES) -> None:
        self.model = model
        self.listener = listener
        self.model_name = model_name
        self.system_name = system_name
        self.capabilities: frozenset[str] = frozenset()
        self.offered = offered
        self.frames = fastcodec.ScalarFrames()

    def answer(self, request: m.Message) -> None:
        """Reply to one top-level request; a trace may interleave many exchanges."""
        while True:
            try:
                self._answer_once(request)
                return
            except _Restart as restart:
                request = restart.request
                if isinstance(request, m.Error):
                    log.error("%s", request.message)
                else:
                    log.warning("engine abandoned the trace with %s; starting over", type(request).__name__)

    def _reply(self, message: m.Message) -> None:
        self.listener.reply(fastcodec.encode(message))

    def _answer_once(self, request: m.Message) -> None:
        if isinstance(request, m.Handshake):
            if request.protocol_version >= 1:
                self.capabilities = frozenset(request.capabilities) & frozenset(self.offered)
            else:
                self.capabilities = frozenset()
            self._reply(m.HandshakeResult(self.system_name, self.model_name, m.PROTOCOL_VERSION, self.offered))
        elif isinstance(request, m.Run) and request.num_traces == 0:
            self._run_forwarded()
        elif isinstance(request, m.Run) and m.CAPABILITY_TRACE_BATCH in self.capabilities:
            if request.num_traces > MAX_BATCH_TRACES:
                self.refuse(f"Run.num_traces {request.num_traces} is more than the {MAX_BATCH_TRACES} "
                            f"traces one batch may hold")
            else:
                self._run_batch(request.num_traces, request.seed)
        else:
            self._reply(m.Reset())

    def _run_forwarded(self) -> None:
        try:
            with _Forward(self.listener, self.capabilities, self.frames):
                result = run_model(self.model)
        except _Restart:
            raise
        except ProtocolError as err:  # the engine's answer to one of the model's sites was malformed
            self.refuse(f"malformed request during the trace: {err}")
            return
        except Exception as err:  # the model's own failure, reported rather than fatal
            self._report(err)
            return
        self._reply(m.RunResult(as_result_array(result)))

    def _run_batch(self, num_traces: int, seed: int) -> None:
        traces, results = [], []
        if seed:
            torch.manual_seed(seed)
        try:
            sparse = m.CAPABILITY_SPARSE in self.capabilities
            for _ in range(num_traces):
                records, result = record_prior_trace(self.model, sparse)
                traces.append(records)
                results.append(result)
        except Exception as err:
            self._report(err)
            return
        self._reply(pack(traces, results))

    def _report(self, err: Exception) -> None:
        log.error("model raised during a trace:\n%s", traceback.format_exc())
        self._answer_failure(f"{type(err).__name__}: {err}")

    def refuse(self, why: str) -> None:
        """Answer a request that cannot be served, saying why where the engine understands it."""
        log.error("refusing a request: %s", why)
        self._answer_failure(why)

    def _answer_failure(self, message: str) -> None:
        if m.CAPABILITY_ERROR in self.capabilities:
            self._reply(m.Error(message))
        else:
            self._reply(m.Reset())


def serve(
    model: Callable[[], Any],
    address: str = DEFAULT_ADDRESS,
    *,
    model_name: Optional[str] = None,
    system_name: str = "ppx-python",
    max_requests: Optional[int] = None,
    on_ready: Optional[Callable[[str], None]] = None,
    curve: Optional[KeyDirectory] = None,
) -> None:
    """Answer PPX requests for ``model`` on ``address`` until interrupted.

    Args:
        model: a function of no arguments that calls ``ppx.sample``/``observe``/``tag``
            (or ``pyro.sample`` under ``ppx.pyro_bridge``) and returns its result.
        address: the endpoint to bind; tcp defaults to the loopback interface.
        model_name: reported in the Handshake; defaults to the function's name.
        max_requests: stop after this many top-level requests (for tests).
        on_ready: called with the bound address once the socket listens.
        curve: a key directory from ``ppx keys``: answer only engines whose CURVE keys
            it authorises (tcp and ipc); None takes ``$PPX_CURVE`` when it is set.
    """
    listener = Listener(address, curve=curve, channel=True)
    offered = CAPABILITIES + ((m.CAPABILITY_LOCAL_CHANNEL,) if listener.channel_path else ())
    session = _Session(model, listener, model_name or getattr(model, "__name__", "model"), system_name, offered)
    log.info("serving %s on %s%s", session.model_name, listener.bound_address,
             " (CURVE: authorised engines only)" if listener.secured else "")
    if on_ready is not None:
        on_ready(listener.bound_address)
    served = 0
    try:
        while max_requests is None or served < max_requests:
            frame = listener.receive()
            try:
                request = fastcodec.decode(frame)
            except ProtocolError as err:
                session.refuse(f"malformed request: {err}")
            else:
                session.answer(request)
            served += 1
    finally:
        listener.close()
