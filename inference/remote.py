"""The engine's end of PPX: drive one simulator through handshakes and traces.

A trace is a conversation of many request/reply pairs. It is written once, as a
``Job``: a generator that yields each request frame and is sent each reply
frame, and returns the finished traces. ``RemoteSimulator`` runs jobs on one
connection; ``SimulatorPool`` interleaves jobs over many.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Generator, Mapping, Optional, Sequence

import numpy as np

from inference.controllers import PRIOR, Controller, draw_from_prior
from inference.observations import check_observed_shape
from inference.prior_draws import draw_prior
from inference.sequential import OneTraceAtATime
from inference.streams import Seed, Stream, job_seeds
from inference.trace import StageCall, Trace
from ppx import codec, fastcodec
from ppx import messages as m
from ppx.batch import check_finite_params, unpack
from ppx.distributions import BY_TYPE_ID, WireValue, sample_shape
from ppx.errors import ProtocolError, ProtocolTimeout, SimulatorError
from ppx.curve import KeyDirectory
from ppx.channel import ChannelConnection, channel_path
from ppx.transport import MAX_FRAME_BYTES, Connection
from ppx.untrusted import distribution_of, invalid_distribution

log = logging.getLogger(__name__)

Job = Generator[Any, Any, list[Trace]]
"""Yields request frames (answered with reply frames) or ``ProposalRequest``s (answered with
``(value, proposal log density)``); returns the finished traces."""


class ProposalRequest:
    """A controlled sample whose value a batched controller will choose, possibly together with
    the waiting samples of other traces; drawn from ``stream``, its trace's random stream, when
    an executor set one, else from torch's generator."""

    __slots__ = ("controller", "trace", "key", "name", "distribution", "stream")

    def __init__(self, controller: Controller, trace: Trace, key: str, name: str, distribution: Any) -> None:
        self.controller = controller
        self.trace = trace
        self.key = key
        self.name = name
        self.distribution = distribution
        self.stream: Optional[Stream] = None


def answer_proposals(requests: Sequence[ProposalRequest]) -> list[tuple[np.ndarray, Optional[float]]]:
    """Answer waiting samples, one ``choose_batch`` call per kind of controller."""
    results: list[Any] = [None] * len(requests)
    by_kind: dict[type, list[int]] = {}
    for i, request in enumerate(requests):
        by_kind.setdefault(type(request.controller), []).append(i)
    for kind, indices in by_kind.items():
        for i, result in zip(indices, kind.choose_batch([requests[i] for i in indices])):
            results[i] = result
    return results
Observations = Mapping[str, WireValue]
"""Observed values by name: float64 arrays, or ``SparseArray``s for sparse observations."""

ABANDON_TIMEOUT = 1.0
"""Seconds to wait for a simulator to acknowledge that the engine abandoned its trace."""
ENGINE_CAPABILITIES = (m.CAPABILITY_TRACE_BATCH, m.CAPABILITY_ERROR, m.CAPABILITY_STAGE, m.CAPABILITY_SPARSE)
_OBSERVE_RESULT = codec.encode(m.ObserveResult())
_TAG_RESULT = codec.encode(m.TagResult())
_RUN = codec.encode(m.Run())
_RUN_STAGE_LOCALLY = codec.encode(m.StageResult(run_locally=True))
_STAGE_OUTPUT_RESULT = codec.encode(m.StageOutputResult())


_TRACE_STEP = "Sample, Observe, Tag, StageRequest or RunResult"
"""What a simulator may answer in the middle of an engine-driven trace."""


def _unexpected(reply: m.Message, expected: str, during: str) -> ProtocolError:
    """The error for a reply out of protocol order: what was ``expected`` ``during`` what, and what came."""
    if isinstance(reply, m.Error):
        return SimulatorError(f"simulator's model failed {during}: {reply.message}")
    if isinstance(reply, m.Reset):
        return ProtocolError(f"simulator answered Reset {during} (it did not accept the request; "
                             f"expected {expected})")
    return ProtocolError(f"simulator answered out of protocol order {during}: expected {expected}, "
                         f"got {type(reply).__name__}")


Stages = Mapping[str, Callable[[tuple[np.ndarray, ...]], tuple[np.ndarray, ...]]]
"""Surrogates by stage name: each maps a stage's inputs to its outputs."""


def trace_job(controller: Controller = PRIOR, observations: Optional[Observations] = None,
              stages: Optional[Stages] = None) -> Job:
    """One engine-driven trace: every sample's value comes from ``controller``; stages the
    simulator offers run on the engine's surrogates when ``stages`` has one by that name."""
    observations = observations or {}
    stages = stages or {}
    # A controller that keeps the default choice draws controlled samples from the prior too,
    # which needs no pyro distribution (the trace builds one if a log density is asked for).
    prior_only = type(controller).choose is Controller.choose and not controller.batched
    trace = Trace()
    reply = fastcodec.decode((yield _RUN))
    while True:
        if isinstance(reply, m.Sample):
            value = draw_prior(reply.distribution) if prior_only or not reply.control else None
            distribution = proposal_log_prob = None
            if value is None:
                distribution = distribution_of(reply)
                key = f"{reply.address}__{BY_TYPE_ID[reply.distribution.type_id].name}__" \
                      f"{trace.next_instance(reply.address)}"
                if reply.control and controller.batched:
                    value, proposal_log_prob = yield ProposalRequest(controller, trace, key, reply.name,
                                                                     distribution)
                elif reply.control:
                    value, proposal_log_prob = controller.choose(trace, key, reply.name, distribution)
                else:
                    value = draw_from_prior(distribution)
            trace.add(m.RECORD_SAMPLE, reply.address, reply.name, value, wire=reply.distribution,
                      distribution=distribution, control=reply.control,
                      proposal_log_prob=proposal_log_prob)
            reply = fastcodec.decode((yield fastcodec.encode(m.SampleResult(value))))
        elif isinstance(reply, m.Observe):
            observed = observations.get(reply.name) if reply.name else None
            if observed is not None:
                try:
                    shape = reply.value.shape if reply.value is not None else \
                        sample_shape(reply.distribution.type_id, reply.distribution.params)
                except ValueError as err:
                    raise invalid_distribution(reply, err) from None
                check_observed_shape(reply.name, observed, shape, reply.address)
                value = observed
            elif reply.value is not None:
                value = reply.value
            else:
                value = draw_prior(reply.distribution)
                if value is None:
                    value = draw_from_prior(distribution_of(reply))
            trace.add(m.RECORD_OBSERVE, reply.address, reply.name, value, wire=reply.distribution,
                      observed=observed is not None)
            reply = fastcodec.decode((yield _OBSERVE_RESULT))
        elif isinstance(reply, m.Tag):
            trace.add(m.RECORD_TAG, reply.address, reply.name, reply.value)
            reply = fastcodec.decode((yield _TAG_RESULT))
        elif isinstance(reply, m.StageRequest):
            surrogate = stages.get(reply.name)
            if surrogate is None:
                output = fastcodec.decode((yield _RUN_STAGE_LOCALLY))
                if not isinstance(output, m.StageOutput):
                    raise _unexpected(output, "StageOutput", f"after running stage {reply.name!r} locally")
                trace.stages.append(StageCall(reply.name, reply.inputs, output.outputs, surrogate=False))
                reply = fastcodec.decode((yield _STAGE_OUTPUT_RESULT))
            else:
                outputs = tuple(np.asarray(o, dtype=np.float64) for o in surrogate(reply.inputs))
                trace.stages.append(StageCall(reply.name, reply.inputs, outputs, surrogate=True))
                reply = fastcodec.decode((yield codec.encode(m.StageResult(run_locally=False, outputs=outputs))))
        elif isinstance(reply, m.RunResult):
            trace.result = reply.result
            return [trace]
        else:
            raise _unexpected(reply, _TRACE_STEP, "during a trace")


def batch_job(num_traces: int, observations: Optional[Observations] = None, seed: int = 0) -> Job:
    """``num_traces`` prior traces sampled by the simulator itself, in one exchange; a nonzero
    ``seed`` (below 2^32) seeds the simulator's generator for them."""
    reply = codec.decode((yield codec.encode(m.Run(num_traces=num_traces, seed=seed))))
    if not isinstance(reply, m.TraceBatch):
        raise _unexpected(reply, "TraceBatch", f"to a request for {num_traces} prior traces")
    unpacked = unpack(reply)
    check_finite_params(reply)
    traces = [Trace.from_records(records, result, observations) for records, result in unpacked]
    if len(traces) != num_traces:
        raise ProtocolError(f"asked for {num_traces} prior traces, the simulator sent {len(traces)}")
    return traces


class RemoteSimulator(OneTraceAtATime):
    """A connection to one PPX simulator (ours or any plain PPX implementation).

    Args:
        address: the simulator's ZeroMQ endpoint, e.g. ``ipc:///tmp/sim.sock``.
        timeout: seconds to wait for each reply before ``ProtocolTimeout``.
        handshake_timeout: seconds to wait for the first reply (a simulator
            process may still be starting).
        curve: a key directory from ``ppx keys`` to authenticate with (tcp and ipc);
            None takes ``$PPX_CURVE`` when it is set, ``""`` means none.
        local_channel: offer the ``local-channel`` extension (``ppx.channel``) to an ipc
            simulator without CURVE; False keeps every request on the ZeroMQ socket.
    """

    def __init__(self, address: str, timeout: float = 30.0, handshake_timeout: Optional[float] = None,
                 system_name: str = "ppx-engine", alive: Optional[Callable[[], bool]] = None,
                 stages: Optional[Stages] = None, curve: Optional[KeyDirectory] = None,
                 local_channel: bool = True) -> None:
        self.connection: Connection | ChannelConnection = Connection(address, timeout, curve=curve)
        self.local_channel = local_channel
        self.stages = dict(stages or {})
        self.system_name = system_name
        self.model_name = ""
        self.peer_system_name = ""
        self.peer_version = 0
        self.capabilities: frozenset[str] = frozenset()
        try:
            self.handshake(handshake_timeout, alive)
        except BaseException:
            self.close()
            raise

    @property
    def address(self) -> str:
        return self.connection.address

    def handshake(self, timeout: Optional[float] = None, alive: Optional[Callable[[], bool]] = None) -> None:
        """Exchange names, versions and capabilities; extensions need both sides to announce them.

        ``alive``, when given, is polled while waiting so that a simulator process
        that exits during start-up is reported at once rather than at the timeout.
        """
        limit = self.connection.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        self.connection.send(codec.encode(
            m.Handshake(self.system_name, m.PROTOCOL_VERSION, self._offered_capabilities())))
        while not self.connection.poll(min(0.1, max(0.0, deadline - time.monotonic()))):
            if alive is not None and not alive():
                raise ProtocolError(f"simulator for {self.address} exited before answering the Handshake")
            if time.monotonic() >= deadline:
                self.connection.reset()
                raise ProtocolTimeout(f"simulator at {self.address} did not answer the Handshake within "
                                      f"{limit:g} s (is it running, and listening on that address?)")
        reply = codec.decode(self.connection.receive(0))
        if not isinstance(reply, m.HandshakeResult):
            raise _unexpected(reply, "HandshakeResult", "to the Handshake")
        self.absorb_handshake(reply)
        if m.CAPABILITY_LOCAL_CHANNEL in self.capabilities:
            self._open_channel()

    def _offered_capabilities(self) -> tuple[str, ...]:
        # A channel bypasses CURVE, so a secured connection never offers one.
        local = self.local_channel and channel_path(self.address) is not None and self.connection.keys is None
        return ENGINE_CAPABILITIES + ((m.CAPABILITY_LOCAL_CHANNEL,) if local else ())

    def absorb_handshake(self, reply: m.HandshakeResult) -> None:
        self.model_name = reply.model_name
        self.peer_system_name = reply.system_name
        self.peer_version = reply.protocol_version
        ours = frozenset(self._offered_capabilities())
        self.capabilities = ours & frozenset(reply.capabilities) if reply.protocol_version >= 1 else frozenset()
        log.info("connected to %s (%s, PPX extensions v%d: %s)", self.model_name, self.peer_system_name,
                 self.peer_version, ", ".join(sorted(self.capabilities)) or "none")

    def _open_channel(self) -> None:
        """Carry every further request over the simulator's local channel; stay on the ipc
        endpoint if it cannot be opened."""
        try:
            channel = ChannelConnection(self.address, self.connection.timeout, MAX_FRAME_BYTES)
        except ProtocolError as err:
            log.warning("%s; staying on the ipc endpoint", err)
            self.capabilities -= {m.CAPABILITY_LOCAL_CHANNEL}
            return
        self.connection.close()
        self.connection = channel

    @property
    def supports_batches(self) -> bool:
        return m.CAPABILITY_TRACE_BATCH in self.capabilities

    def execute(self, job: Job) -> list[Trace]:
        """Run one job to completion on this connection."""
        item = next(job)
        while True:
            if isinstance(item, ProposalRequest):
                answer = answer_proposals([item])[0]
            else:
                answer = self.connection.request(item)
            try:
                item = job.send(answer)
            except StopIteration as done:
                return done.value
            except (ProtocolError, ValueError) as err:
                if not isinstance(err, SimulatorError):  # the simulator may still be inside the trace
                    self.abandon_trace(err)
                raise

    def abandon_trace(self, why: Exception) -> None:
        """Tell a simulator that negotiated ``error`` why the engine gave up on its trace, so that
        it logs the reason and stops waiting inside it; plain PPX peers start over at the next Run."""
        if m.CAPABILITY_ERROR not in self.capabilities:
            return
        try:
            self.connection.send(codec.encode(m.Error(f"engine abandoned the trace: {why}")))
            self.connection.receive(min(self.connection.timeout, ABANDON_TIMEOUT))
        except ProtocolError:  # secondary to the error being raised; a timeout resets the connection
            pass

    def run(self, controller: Controller = PRIOR, observations: Optional[Observations] = None) -> Trace:
        return self.execute(trace_job(controller, observations, self.stages))[0]

    def prior(self, num_traces: int, observations: Optional[Observations] = None, batch_size: int = 64,
              on_done: Optional[Callable[[list[Trace]], None]] = None, seed: Seed = None) -> list[Trace]:
        """Prior traces: batched and pipelined when the simulator supports it, else one by one.
        ``seed`` (by default one from torch's generator) fixes their values."""
        if not self.supports_batches:
            return self.run_many([PRIOR] * num_traces, observations, on_done, seed)
        seeds = iter(job_seeds(-(-num_traces // batch_size), seed))
        traces: list[Trace] = []
        remaining = num_traces
        job: Optional[Job] = None
        try:
            while remaining > 0 or job is not None:
                reply = self.connection.receive(waiting_for="TraceBatch") if job is not None else None
                next_job = None
                if remaining > 0:  # ask for the next batch before unpacking this one
                    size = min(batch_size, remaining)
                    remaining -= size
                    next_job = batch_job(size, observations, next(seeds))
                    self.connection.send(next(next_job))
                if job is not None:
                    try:
                        job.send(reply)
                    except StopIteration as done:
                        traces.extend(done.value)
                        if on_done is not None:
                            on_done(done.value)
                job = next_job
        except BaseException:
            # A batch already requested would otherwise leave the socket waiting for its reply.
            self.connection.reset()
            raise
        return traces

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> "RemoteSimulator":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
