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

from ppx.channel import ChannelServer, channel_path
from ppx.curve import (HANDSHAKE_FAILURES, EngineKeys, KeyDirectory, handshake_refusal, key_directory,
                       secure_simulator_socket, secures)
from ppx.errors import AuthenticationFailed, ProtocolError, ProtocolTimeout
from ppx.spin import CHANNEL_SPIN_WEIGHT, Spinner

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
MAX_FRAME_BYTES = 1 << 31
"""Frames above this size are refused by the socket (a peer claiming absurd sizes)."""
_SIGNAL_CHECK_MS = 100


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


_POLLIN = int(zmq.POLLIN)  # a plain int: pyzmq's enums cost microseconds per use


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
        self._spinner = Spinner()
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

    def receive(self, timeout: Optional[float] = None, waiting_for: str = "reply") -> bytes:
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

    def request(self, frame: bytes, waiting_for: str = "reply") -> bytes:
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
    """The simulator's REP socket, bound to one endpoint, and optionally its local channel.

    Args:
        address: the endpoint to bind.
        curve: a key directory from ``ppx keys``: only the engines it authorises get
            through (tcp and ipc); None takes ``$PPX_CURVE`` when it is set.
        channel: also listen on a local channel (``ppx.channel``) beside an ipc endpoint
            without CURVE; ``channel_path`` says whether one is open.
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, curve: Optional[KeyDirectory] = None,
                 channel: bool = False) -> None:
        self.address = check_address(address)
        directory = key_directory(curve) if secures(self.address) else None
        # A context has one authentication handler, so a secured socket gets a context of its own.
        self.secured = directory is not None
        self._context = zmq.Context() if self.secured else _context()
        self._authenticator = None
        self._channel: Optional[ChannelServer] = None
        self._replying_on_channel = False
        self._spinner = Spinner()
        self._channel_spinner = Spinner(weight=CHANNEL_SPIN_WEIGHT)
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
        path = channel_path(self.address) if channel and not self.secured else None
        if path is not None:
            try:
                self._channel = ChannelServer(path, MAX_FRAME_BYTES)
            except OSError as err:  # the engine falls back to the ipc endpoint
                log.warning("no local channel beside %s (%s); serving on the endpoint alone", self.address, err)

    @property
    def channel_path(self) -> Optional[str]:
        """Where the local channel listens, or None when there is none."""
        return None if self._channel is None else self._channel.path

    def receive(self) -> bytes:
        """The next request, waiting as long as it takes.

        The wait is cut into short polls so that Ctrl-C and SIGTERM handlers run
        promptly even when the signal lands on one of ZeroMQ's threads.
        """
        if self._channel is not None:
            return self._receive_either()
        socket = self._socket
        if not self._spinner.wait(socket):
            waiting = [(socket, _POLLIN)]  # zmq_poll itself: Socket.poll builds a Poller per call
            while not zmq.zmq_poll(waiting, _SIGNAL_CHECK_MS):
                pass
        return socket.recv()

    def _receive_either(self) -> bytes:
        """The next request from the REP socket or the channel; the reply goes back the same way.
        While an engine is on the channel, its next request is spun for as the REP socket's is."""
        socket, channel = self._socket, self._channel
        while True:
            current = channel.current
            if current is not None:
                if self._channel_spinner.wait_for(channel.current_readable):
                    frame = channel.read(current)
                    if frame is not None:
                        self._replying_on_channel = True
                        return frame
                    continue
            elif self._spinner.wait(socket):
                self._replying_on_channel = False
                return socket.recv()
            for item, _ in zmq.zmq_poll([(socket, _POLLIN)] + channel.poll_items(), _SIGNAL_CHECK_MS):
                if item is socket:
                    self._replying_on_channel = False
                    return socket.recv()
                frame = channel.take(item)
                if frame is not None:
                    self._replying_on_channel = True
                    return frame

    def reply(self, frame: bytes) -> None:
        if self._replying_on_channel:
            self._channel.reply(frame)
        else:
            self._socket.send(frame, copy=len(frame) < 65536)

    def _release(self) -> None:
        self._socket.close(linger=0)
        if self._channel is not None:
            self._channel.close()
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
