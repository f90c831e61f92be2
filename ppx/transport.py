"""ZeroMQ sockets for both ends, each owned by one small class.

The simulator binds a REP socket (``Listener``); the engine connects a REQ
socket (``Connection``). Every engine-side receive has a timeout: a dead or hung
simulator raises ``ProtocolTimeout`` naming the address, and the socket is
rebuilt so the connection can be used again once the peer is back.

Either end may use CURVE (``ppx.curve``): given a key directory, or ``$PPX_CURVE``,
the simulator accepts only authorised engines and the engine only the simulator
whose key it expects. A refused security handshake raises ``AuthenticationFailed``
on the engine as soon as ZeroMQ reports it, instead of a silent wait for a reply
that can never come.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
import uuid
from typing import Optional

import zmq
from zmq.utils.monitor import parse_monitor_message

from ppx.curve import (HANDSHAKE_FAILURES, EngineKeys, KeyDirectory, handshake_refusal, key_directory,
                       secure_simulator_socket, secures)
from ppx.errors import AuthenticationFailed, ProtocolError, ProtocolTimeout

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
MAX_FRAME_BYTES = 1 << 31
"""Frames above this size are refused by the socket (a peer claiming absurd sizes)."""
_SIGNAL_CHECK_MS = 100
SPIN_SECONDS = 500e-6
"""How long a receive checks for a message before sleeping in the kernel."""


def check_address(address: str) -> str:
    """Return ``address`` if it is a ZeroMQ endpoint this project speaks, else raise ``ValueError``."""
    if not isinstance(address, str) or "://" not in address:
        raise ValueError(f"address {address!r} is not a ZeroMQ endpoint such as "
                         f"'ipc:///tmp/sim.sock' or 'tcp://127.0.0.1:5555'")
    scheme = address.split("://", 1)[0]
    if scheme not in ("ipc", "tcp", "inproc"):
        raise ValueError(f"address {address!r} uses transport {scheme!r}; expected ipc, tcp or inproc")
    return address


def fresh_ipc_address(prefix: str = "ppx") -> str:
    """A new ipc endpoint in the temporary directory, unique to this call."""
    return f"ipc://{os.path.join(tempfile.gettempdir(), f'{prefix}-{uuid.uuid4().hex[:12]}.sock')}"


class _Spinner:
    """Checks for a message without sleeping, for as long as that pays.

    A reply that arrives within a round trip's usual span is picked up without the
    process going to sleep and paying the scheduler's wake-up latency. That holds
    while the process has a core to itself: on a machine with more runnable
    processes than cores, a spinning process uses up its share of the CPU and then
    waits for the scheduler, far longer than a wake-up. So a spin during which the
    process lost its core (its wall time ran ahead of its CPU time by more than
    ``LOST_SECONDS``) turns spinning off for ``PAUSE_SECONDS``; receives then sleep at
    once, and spinning is tried again afterwards.
    """

    LOST_SECONDS = 100e-6
    PAUSE_SECONDS = 1.0

    def __init__(self, seconds: float = SPIN_SECONDS) -> None:
        self.seconds = seconds
        self.paused_until = 0.0

    def wait(self, socket: zmq.Socket) -> bool:
        """True once a message is waiting on ``socket``; False if none came while spinning."""
        events = socket.get  # reading ZMQ_EVENTS is the cheapest readiness check pyzmq has
        if events(zmq.EVENTS) & zmq.POLLIN:
            return True
        started = time.perf_counter()
        if started < self.paused_until:
            return False
        cpu_started = time.thread_time()
        deadline = started + self.seconds
        while True:
            if events(zmq.EVENTS) & zmq.POLLIN:
                ready = True
                break
            if time.perf_counter() >= deadline:
                ready = False
                break
        ended = time.perf_counter()
        if (ended - started) - (time.thread_time() - cpu_started) > self.LOST_SECONDS:
            self.paused_until = ended + self.PAUSE_SECONDS
        return ready


def _context() -> zmq.Context:
    return zmq.Context.instance()


class Connection:
    """The engine's REQ socket to one simulator, with timeouts and reconnects.

    Args:
        address: the simulator's endpoint.
        timeout: seconds to wait for any reply before raising ``ProtocolTimeout``.
        curve: a key directory from ``ppx keys`` to authenticate and encrypt with
            (tcp and ipc); None takes ``$PPX_CURVE`` when it is set, ``""`` means none.
    """

    def __init__(self, address: str, timeout: float = 30.0, curve: Optional[KeyDirectory] = None) -> None:
        self.address = check_address(address)
        self.timeout = timeout
        directory = key_directory(curve) if secures(self.address) else None
        self.keys = EngineKeys(directory) if directory is not None else None
        self._socket: Optional[zmq.Socket] = None
        self._awaiting = False
        self._spinner = _Spinner()
        self._open()

    def _open(self) -> None:
        socket = _context().socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        if self.keys is not None:
            self.keys.secure(socket)
        # A refused handshake leaves a REQ waiting forever; only the monitor hears of it.
        self._monitor = socket.get_monitor_socket(HANDSHAKE_FAILURES)
        self._monitor.setsockopt(zmq.LINGER, 0)
        self._poller = zmq.Poller()
        self._poller.register(socket, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        self._unexplained_failures = 0
        self._socket = socket
        self._awaiting = False
        try:
            socket.connect(self.address)
        except zmq.ZMQError:
            self.close()
            raise

    def reset(self) -> None:
        """Drop the socket (and any reply still due on it) and connect afresh."""
        self.close()
        self._open()

    def send(self, frame: bytes) -> None:
        if self._socket is None:
            raise ProtocolError(f"connection to {self.address} is closed")
        if self._awaiting:
            raise ProtocolError(f"a request to {self.address} is still awaiting its reply")
        self._socket.send(frame, copy=len(frame) < 65536)
        self._awaiting = True

    def poll(self, timeout: float) -> bool:
        """Whether the reply has arrived within ``timeout`` seconds (the request stays pending).

        Raises ``AuthenticationFailed`` (and resets the socket) once the simulator has
        refused the security handshake, as no reply can then come.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            ready = dict(self._poller.poll(math.ceil(remaining * 1000)))
            if self._socket in ready:
                return True
            if self._monitor in ready:
                self._check_handshake()
            elif remaining <= 0.0:
                return False

    def _check_handshake(self) -> None:
        while True:
            try:
                frames = self._monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            event = parse_monitor_message(frames)
            kind, value = int(event["event"]), int(event["value"])
            if kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                self._unexplained_failures += 1
            refusal = handshake_refusal(kind, value, self.address, self.keys, self._unexplained_failures)
            if refusal is not None:
                self.reset()
                raise AuthenticationFailed(refusal)

    def receive(self, timeout: Optional[float] = None, waiting_for: str = "a reply") -> bytes:
        """The reply to the last request; after ``timeout`` seconds the socket is reset and
        ``ProtocolTimeout`` raised."""
        socket = self._socket
        if socket is None:
            raise ProtocolError(f"connection to {self.address} is closed")
        limit = self.timeout if timeout is None else timeout
        if not self._spinner.wait(socket) and not self.poll(limit):
            self.reset()
            hint = "is it running, and listening on that address?"
            if self.keys is not None:
                hint += (f" CURVE is in use, with the keys in {self.keys.directory}: a simulator that does not "
                         f"authorise this engine's key never answers, so authentication may be the reason")
            raise ProtocolTimeout(f"simulator at {self.address} sent no {waiting_for} within {limit:g} s ({hint})")
        frame = socket.recv()
        self._awaiting = False
        return frame

    def request(self, frame: bytes, waiting_for: str = "a reply") -> bytes:
        self.send(frame)
        return self.receive(waiting_for=waiting_for)

    @property
    def socket(self) -> zmq.Socket:
        """The underlying socket, for polling many connections at once."""
        return self._socket

    def close(self) -> None:
        if self._socket is not None:
            self._socket.disable_monitor()
            self._monitor.close(linger=0)
            self._socket.close(linger=0)
            self._socket = None

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Listener:
    """The simulator's REP socket, bound to one endpoint.

    Args:
        address: the endpoint to bind.
        curve: a key directory from ``ppx keys``: only the engines it authorises get
            through (tcp and ipc); None takes ``$PPX_CURVE`` when it is set.
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, curve: Optional[KeyDirectory] = None) -> None:
        self.address = check_address(address)
        directory = key_directory(curve) if secures(self.address) else None
        # A context has one authentication handler, so a secured socket gets a context of its own.
        self.secured = directory is not None
        self._context = zmq.Context() if self.secured else _context()
        self._authenticator = None
        self._spinner = _Spinner()
        self._socket = self._context.socket(zmq.REP)
        socket = self._socket
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        try:
            if directory is not None:
                self._authenticator = secure_simulator_socket(socket, directory)
            socket.bind(self.address)
        except zmq.ZMQError as err:
            self._release()
            raise ProtocolError(f"cannot listen on {self.address}: {err}") from err
        except BaseException:
            self._release()
            raise
        self.bound_address = socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def receive(self) -> bytes:
        """The next request, waiting as long as it takes.

        The wait is cut into short polls so that Ctrl-C and SIGTERM handlers run
        promptly even when the signal lands on one of ZeroMQ's threads.
        """
        socket = self._socket
        if not self._spinner.wait(socket):
            while not socket.poll(_SIGNAL_CHECK_MS):
                pass
        return socket.recv()

    def reply(self, frame: bytes) -> None:
        self._socket.send(frame, copy=len(frame) < 65536)

    def _release(self) -> None:
        self._socket.close(linger=0)
        if self._authenticator is not None:
            self._authenticator.stop()
        if self.secured:
            self._context.term()

    def close(self) -> None:
        self._release()
        if self.address.startswith("ipc://"):
            with_path = self.address[len("ipc://"):]
            if with_path and not with_path.startswith("@"):
                try:
                    os.unlink(with_path)
                except OSError:
                    pass
