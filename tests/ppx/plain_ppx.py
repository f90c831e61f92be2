"""A minimal plain PPX 1.0 engine and simulator, written only with flatc's generated code and pyzmq.

They stand in for the reference implementations (the flatc-based Python engine
and the C++ front end's instrumented programs) in interoperability tests: no
extension fields, no file identifier, one REQ/REP round trip per message. The
frame builders and readers are also used on their own by the codec tests.

Run the simulator as a subprocess::

    python -m tests.ppx.plain_ppx simulator ADDRESS [--observed OBS0 OBS1]

Its model is the Gaussian with unknown mean: ``mu ~ Normal(1, sqrt 5)``, then
``obs0`` and ``obs1 ~ Normal(mu, sqrt 2)``, returning ``mu``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Optional, Sequence

import flatbuffers
import numpy as np
import zmq

from ppx.schema.generated import (Bernoulli, Beta, Binomial, Categorical, Exponential, Gamma,
                                  Handshake, HandshakeResult, LogNormal, Message, Normal, Observe,
                                  ObserveResult, Poisson, Reset, Run, RunResult, Sample,
                                  SampleResult, Tag, TagResult, Tensor, Uniform, Weibull)
from ppx.schema.generated.Distribution import Distribution
from ppx.schema.generated.MessageBody import MessageBody

ADDRESS_MU = "[forward()+0x96]"
ADDRESS_OBS = ("[forward()+0x1c2]", "[forward()+0x2a8]")
PRIOR_MEAN, PRIOR_STDDEV = 1.0, math.sqrt(5.0)
LIKELIHOOD_STDDEV = math.sqrt(2.0)

# Generated module, table name and parameter accessors of each distribution, by union id.
DISTRIBUTIONS: dict[int, tuple[Any, str, tuple[str, ...]]] = {
    Distribution.Normal: (Normal, "Normal", ("Mean", "Stddev")),
    Distribution.Uniform: (Uniform, "Uniform", ("Low", "High")),
    Distribution.Categorical: (Categorical, "Categorical", ("Probs",)),
    Distribution.Poisson: (Poisson, "Poisson", ("Rate",)),
    Distribution.Bernoulli: (Bernoulli, "Bernoulli", ("Probs",)),
    Distribution.Beta: (Beta, "Beta", ("Concentration1", "Concentration0")),
    Distribution.Exponential: (Exponential, "Exponential", ("Rate",)),
    Distribution.Gamma: (Gamma, "Gamma", ("Concentration", "Rate")),
    Distribution.LogNormal: (LogNormal, "LogNormal", ("Loc", "Scale")),
    Distribution.Binomial: (Binomial, "Binomial", ("TotalCount", "Probs")),
    Distribution.Weibull: (Weibull, "Weibull", ("Scale", "Concentration")),
}

# Generated module and class name of each plain PPX message, by union id.
BODIES: dict[int, tuple[Any, str]] = {
    MessageBody.Handshake: (Handshake, "Handshake"),
    MessageBody.HandshakeResult: (HandshakeResult, "HandshakeResult"),
    MessageBody.Run: (Run, "Run"),
    MessageBody.RunResult: (RunResult, "RunResult"),
    MessageBody.Sample: (Sample, "Sample"),
    MessageBody.SampleResult: (SampleResult, "SampleResult"),
    MessageBody.Observe: (Observe, "Observe"),
    MessageBody.ObserveResult: (ObserveResult, "ObserveResult"),
    MessageBody.Tag: (Tag, "Tag"),
    MessageBody.TagResult: (TagResult, "TagResult"),
    MessageBody.Reset: (Reset, "Reset"),
}


class PlainPeerError(RuntimeError):
    """The other side sent something a plain PPX peer does not expect at this point."""


# ---------------------------------------------------------------- writing frames

def build_tensor(builder: flatbuffers.Builder, value: Any) -> int:
    """A Tensor table holding ``value`` (row-major float64 data and int32 shape)."""
    array = np.asarray(value, dtype=np.float64)
    data = builder.CreateNumpyVector(array.ravel())
    shape = builder.CreateNumpyVector(np.asarray(array.shape, dtype=np.int32))
    Tensor.TensorStart(builder)
    Tensor.TensorAddData(builder, data)
    Tensor.TensorAddShape(builder, shape)
    return Tensor.TensorEnd(builder)


def build_distribution(builder: flatbuffers.Builder, type_id: int, params: Sequence[Any]) -> int:
    """The parameter table of a distribution union member."""
    module, table, accessors = DISTRIBUTIONS[type_id]
    tensors = [build_tensor(builder, p) for p in params]
    getattr(module, f"{table}Start")(builder)
    for accessor, tensor in zip(accessors, tensors):
        getattr(module, f"{table}Add{accessor}")(builder, tensor)
    return getattr(module, f"{table}End")(builder)


def finish(builder: flatbuffers.Builder, body_type: int, body: int) -> bytes:
    """Wrap ``body`` in the root Message, without a file identifier as peers in the field do."""
    Message.MessageStart(builder)
    Message.MessageAddBodyType(builder, body_type)
    Message.MessageAddBody(builder, body)
    builder.Finish(Message.MessageEnd(builder))
    return bytes(builder.Output())


def empty_frame(body_type: int) -> bytes:
    """A message whose body table has no fields (Run, ObserveResult, TagResult, Reset)."""
    builder = flatbuffers.Builder(64)
    module, name = BODIES[body_type]
    getattr(module, f"{name}Start")(builder)
    return finish(builder, body_type, getattr(module, f"{name}End")(builder))


def handshake_frame(system_name: str) -> bytes:
    builder = flatbuffers.Builder(64)
    name = builder.CreateString(system_name)
    Handshake.HandshakeStart(builder)
    Handshake.HandshakeAddSystemName(builder, name)
    return finish(builder, MessageBody.Handshake, Handshake.HandshakeEnd(builder))


def handshake_result_frame(system_name: str, model_name: str) -> bytes:
    builder = flatbuffers.Builder(64)
    system = builder.CreateString(system_name)
    model = builder.CreateString(model_name)
    HandshakeResult.HandshakeResultStart(builder)
    HandshakeResult.HandshakeResultAddSystemName(builder, system)
    HandshakeResult.HandshakeResultAddModelName(builder, model)
    return finish(builder, MessageBody.HandshakeResult, HandshakeResult.HandshakeResultEnd(builder))


def result_frame(body_type: int, value: Any) -> bytes:
    """RunResult or SampleResult holding one tensor (RunResult without one when ``value`` is None)."""
    builder = flatbuffers.Builder(64)
    module, name = BODIES[body_type]
    tensor = None if value is None else build_tensor(builder, value)
    getattr(module, f"{name}Start")(builder)
    if tensor is not None:
        getattr(module, f"{name}AddResult")(builder, tensor)
    return finish(builder, body_type, getattr(module, f"{name}End")(builder))


def sample_frame(address: str, name: str, type_id: int, params: Sequence[Any],
                 control: Optional[bool] = None) -> bytes:
    """A Sample; ``control=None`` leaves the field out so that it reads as its default, true."""
    builder = flatbuffers.Builder(128)
    address_at, name_at = builder.CreateString(address), builder.CreateString(name)
    distribution = build_distribution(builder, type_id, params)
    Sample.SampleStart(builder)
    Sample.SampleAddAddress(builder, address_at)
    Sample.SampleAddName(builder, name_at)
    Sample.SampleAddDistributionType(builder, type_id)
    Sample.SampleAddDistribution(builder, distribution)
    if control is not None:
        builder.ForceDefaults(True)  # write the field even when it equals the default
        Sample.SampleAddControl(builder, control)
        builder.ForceDefaults(False)
    return finish(builder, MessageBody.Sample, Sample.SampleEnd(builder))


def observe_frame(address: str, name: str, type_id: int, params: Sequence[Any],
                  value: Any = None) -> bytes:
    """An Observe; without ``value`` the engine is expected to supply the observation by name."""
    builder = flatbuffers.Builder(128)
    address_at, name_at = builder.CreateString(address), builder.CreateString(name)
    distribution = build_distribution(builder, type_id, params)
    tensor = None if value is None else build_tensor(builder, value)
    Observe.ObserveStart(builder)
    Observe.ObserveAddAddress(builder, address_at)
    Observe.ObserveAddName(builder, name_at)
    Observe.ObserveAddDistributionType(builder, type_id)
    Observe.ObserveAddDistribution(builder, distribution)
    if tensor is not None:
        Observe.ObserveAddValue(builder, tensor)
    return finish(builder, MessageBody.Observe, Observe.ObserveEnd(builder))


def tag_frame(address: str, name: str, value: Any) -> bytes:
    builder = flatbuffers.Builder(128)
    address_at, name_at = builder.CreateString(address), builder.CreateString(name)
    tensor = build_tensor(builder, value)
    Tag.TagStart(builder)
    Tag.TagAddAddress(builder, address_at)
    Tag.TagAddName(builder, name_at)
    Tag.TagAddValue(builder, tensor)
    return finish(builder, MessageBody.Tag, Tag.TagEnd(builder))


# ---------------------------------------------------------------- reading frames

def parse(frame: bytes) -> tuple[int, Any]:
    """``(body type, generated body object)``; the body is None for an unknown type or no body."""
    message = Message.Message.GetRootAs(frame, 0)
    body_type, union = message.BodyType(), message.Body()
    if body_type not in BODIES or union is None:
        return body_type, None
    module, name = BODIES[body_type]
    body = getattr(module, name)()
    body.Init(union.Bytes, union.Pos)
    return body_type, body


def read_tensor(tensor: Any) -> Optional[np.ndarray]:
    """The array in a generated Tensor object (None when the field was absent)."""
    if tensor is None:
        return None
    data = np.zeros(0) if tensor.DataIsNone() else tensor.DataAsNumpy()
    shape = (data.size,) if tensor.ShapeIsNone() else tuple(tensor.ShapeAsNumpy().tolist())
    return np.array(data, dtype=np.float64).reshape(shape)


def read_distribution(body: Any) -> tuple[int, tuple[np.ndarray, ...]]:
    """``(union id, parameter arrays)`` of a generated Sample or Observe object."""
    type_id = body.DistributionType()
    module, table, accessors = DISTRIBUTIONS[type_id]
    union = body.Distribution()
    distribution = getattr(module, table)()
    distribution.Init(union.Bytes, union.Pos)
    return type_id, tuple(read_tensor(getattr(distribution, accessor)()) for accessor in accessors)


def text(value: Optional[bytes]) -> str:
    """A generated string accessor's result as ``str`` (absent reads as empty)."""
    return "" if value is None else value.decode()


# ---------------------------------------------------------------- sockets

def _socket(context: zmq.Context, kind: int) -> zmq.Socket:
    socket = context.socket(kind)
    socket.setsockopt(zmq.LINGER, 0)
    return socket


def _receive(socket: zmq.Socket, timeout_s: float, waiting_for: str) -> bytes:
    if not socket.poll(int(timeout_s * 1000), zmq.POLLIN):
        raise TimeoutError(f"no {waiting_for} within {timeout_s} s")
    return socket.recv()


# ---------------------------------------------------------------- engine

class Seen(NamedTuple):
    """One message the simulator sent during a trace."""

    kind: str  # "sample", "observe" or "tag"
    address: str
    name: str
    value: Optional[np.ndarray]  # the value sent back for a sample; the carried value otherwise


SampleValueFn = Callable[[str, str, int, tuple[np.ndarray, ...]], Any]


class PlainEngine:
    """The engine side of plain PPX 1.0: a REQ socket that drives one simulator.

    Args:
        address: the simulator's ZeroMQ endpoint, such as ``ipc:///tmp/sim`` or ``tcp://127.0.0.1:5555``.
        timeout_s: how long to wait for each reply before raising ``TimeoutError`` (after which
            the REQ socket is stuck mid-exchange: close the engine).
        system_name: what the Handshake announces.
    """

    def __init__(self, address: str, timeout_s: float = 10.0, system_name: str = "plain-ppx-engine") -> None:
        self.timeout_s = timeout_s
        self.system_name = system_name
        self._context = zmq.Context()
        self._socket = _socket(self._context, zmq.REQ)
        self._socket.connect(address)

    def close(self) -> None:
        self._socket.close()
        self._context.term()

    def __enter__(self) -> "PlainEngine":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def request(self, frame: bytes, waiting_for: str) -> tuple[int, Any]:
        """Send one request and parse the reply."""
        self._socket.send(frame)
        return parse(_receive(self._socket, self.timeout_s, waiting_for))

    def handshake(self) -> tuple[str, str]:
        """Introduce the engine; returns the simulator's ``(system_name, model_name)``."""
        body_type, body = self.request(handshake_frame(self.system_name), "HandshakeResult")
        if body_type != MessageBody.HandshakeResult:
            raise PlainPeerError(f"expected HandshakeResult, got body type {body_type}")
        return text(body.SystemName()), text(body.ModelName())

    def run(self, sample_value_fn: SampleValueFn) -> tuple[list[Seen], Optional[np.ndarray]]:
        """Run one trace, answering each Sample with ``sample_value_fn(address, name, type, params)``.

        Returns:
            The Sample, Observe and Tag messages in the order seen, and the RunResult tensor.
        """
        seen: list[Seen] = []
        body_type, body = self.request(empty_frame(MessageBody.Run), "reply to Run")
        while body_type != MessageBody.RunResult:
            record, reply = _answer(body_type, body, sample_value_fn)
            seen.append(record)
            body_type, body = self.request(reply, "next message of the trace")
        return seen, read_tensor(body.Result())


_TRACE_MESSAGES = {MessageBody.Sample: "sample", MessageBody.Observe: "observe", MessageBody.Tag: "tag"}


def _answer(body_type: int, body: Any, sample_value_fn: SampleValueFn) -> tuple[Seen, bytes]:
    """What one message of a trace records, and the request that answers it."""
    kind = _TRACE_MESSAGES.get(body_type)
    if kind is None:
        raise PlainPeerError(f"expected Sample, Observe, Tag or RunResult, got body type {body_type}")
    address, name = text(body.Address()), text(body.Name())
    if kind == "sample":
        type_id, params = read_distribution(body)
        value = np.asarray(sample_value_fn(address, name, type_id, params), dtype=np.float64)
        return Seen(kind, address, name, value), result_frame(MessageBody.SampleResult, value)
    reply = empty_frame(MessageBody.ObserveResult if kind == "observe" else MessageBody.TagResult)
    return Seen(kind, address, name, read_tensor(body.Value())), reply


# ---------------------------------------------------------------- simulator

class _Interrupted(Exception):
    """The engine answered a trace message with something else; handle it at top level."""

    def __init__(self, frame: bytes) -> None:
        super().__init__("trace interrupted")
        self.frame = frame


class _TraceChannel:
    """What the model calls: each random choice or observation is one round trip."""

    def __init__(self, socket: zmq.Socket, timeout_s: float) -> None:
        self._socket = socket
        self._timeout_s = timeout_s

    def _exchange(self, frame: bytes, expected: int) -> Any:
        self._socket.send(frame)
        reply = _receive(self._socket, self._timeout_s, "engine's answer")
        body_type, body = _parse_or_none(reply)
        if body_type != expected:
            raise _Interrupted(reply)
        return body

    def sample_normal(self, address: str, name: str, mean: float, stddev: float) -> float:
        body = self._exchange(sample_frame(address, name, Distribution.Normal, (mean, stddev)),
                              MessageBody.SampleResult)
        return float(read_tensor(body.Result()).ravel()[0])

    def observe_normal(self, address: str, name: str, mean: float, stddev: float,
                       value: Optional[float]) -> None:
        self._exchange(observe_frame(address, name, Distribution.Normal, (mean, stddev), value),
                       MessageBody.ObserveResult)


def _parse_or_none(frame: bytes) -> tuple[int, Any]:
    try:
        return parse(frame)
    except Exception:  # a plain peer cannot tell garbage apart; it answers Reset
        return MessageBody.NONE, None


def gaussian_unknown_mean(channel: _TraceChannel, observed: Optional[Sequence[float]]) -> float:
    """The model: the prior on ``mu``, two noisy observations of it; returns ``mu``."""
    mu = channel.sample_normal(ADDRESS_MU, "mu", PRIOR_MEAN, PRIOR_STDDEV)
    for i, address in enumerate(ADDRESS_OBS):
        channel.observe_normal(address, f"obs{i}", mu, LIKELIHOOD_STDDEV,
                               None if observed is None else observed[i])
    return mu


class PlainSimulator:
    """The simulator side of plain PPX 1.0: binds a REP socket and serves the Gaussian model.

    Args:
        address: endpoint to bind, such as ``ipc:///tmp/sim`` or ``tcp://127.0.0.1:*`` (any free port).
        observed: values to send with ``obs0``/``obs1``; None sends Observe without a value.
        timeout_s: how long to wait for the engine's answer in the middle of a trace.

    Attributes:
        endpoint: the bound endpoint, with the port filled in when ``address`` ended in ``:*``.
    """

    system_name = "plain-ppx-simulator"
    model_name = "gaussian-unknown-mean"

    def __init__(self, address: str, observed: Optional[Sequence[float]] = None, timeout_s: float = 10.0) -> None:
        self.observed = observed
        self.timeout_s = timeout_s
        self._context = zmq.Context()
        self._socket = _socket(self._context, zmq.REP)
        self._socket.bind(address)
        self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._channel = _TraceChannel(self._socket, timeout_s)

    def close(self) -> None:
        self._socket.close()
        self._context.term()

    def __enter__(self) -> "PlainSimulator":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def serve(self, idle_timeout_s: float = 60.0) -> None:
        """Answer requests until none arrives for ``idle_timeout_s`` seconds."""
        pending: Optional[bytes] = None
        while True:
            frame = pending
            if frame is None:
                try:
                    frame = _receive(self._socket, idle_timeout_s, "request")
                except TimeoutError:
                    return
            pending = self._answer(frame)

    def _answer(self, frame: bytes) -> Optional[bytes]:
        """Reply to one top-level request; returns a request that interrupted a trace, if any."""
        body_type, _ = _parse_or_none(frame)
        if body_type == MessageBody.Handshake:
            self._socket.send(handshake_result_frame(self.system_name, self.model_name))
        elif body_type == MessageBody.Run:
            try:
                mu = gaussian_unknown_mean(self._channel, self.observed)
            except _Interrupted as interrupted:
                return interrupted.frame
            except TimeoutError:
                return None  # the engine went away mid-trace; wait for the next request
            self._socket.send(result_frame(MessageBody.RunResult, mu))
        else:
            self._socket.send(empty_frame(MessageBody.Reset))
        return None


REPO_ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def simulator_process(address: str, *options: str) -> Iterator[subprocess.Popen]:
    """Run the plain simulator as a subprocess bound to ``address`` for the duration of the block.

    ``options`` are passed on the command line, e.g. ``"--observed", "8", "9"``.
    """
    command = [sys.executable, "-m", "tests.ppx.plain_ppx", "simulator", address, "--idle-timeout", "60", *options]
    process = subprocess.Popen(command, cwd=REPO_ROOT)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.ppx.plain_ppx")
    roles = parser.add_subparsers(dest="role", required=True)
    simulator = roles.add_parser("simulator", help="serve the Gaussian model as a plain PPX 1.0 simulator")
    simulator.add_argument("address", nargs="?", default="tcp://*:5555")
    simulator.add_argument("--observed", nargs=2, type=float, metavar=("OBS0", "OBS1"))
    simulator.add_argument("--idle-timeout", type=float, default=60.0,
                           help="exit after this many seconds without a request")
    args = parser.parse_args(argv)
    with PlainSimulator(args.address, observed=args.observed) as served:
        served.serve(args.idle_timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
