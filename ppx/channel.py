"""The negotiated ``local-channel`` extension: a direct socket to a simulator on the same machine.

Over ipc, every ZeroMQ message passes through an I/O thread in each process, so one round trip
wakes four threads, and on a small machine those threads compete for the cores with the two that
do the work. When the engine and the simulator both announce ``local-channel`` (ipc endpoints
without CURVE only), the simulator also listens on a Unix stream socket beside its ipc endpoint,
at the ipc path plus ``.channel``, and the engine carries every request after the Handshake over
it: the same PPX frames, each preceded by its length as a little-endian uint64. Only the two
working threads take part, and with a core each they wait for each other without sleeping
(``ppx.spin``). Plain PPX peers, tcp endpoints and CURVE connections never see it.

``ChannelConnection`` is the engine's end (the interface of ``ppx.transport.Connection``);
``ChannelServer`` is the simulator's, polled beside its REP socket by ``ppx.transport.Listener``.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import struct
import time
from typing import Callable, Optional

from ppx.errors import ProtocolError, ProtocolTimeout
from ppx.spin import CHANNEL_SPIN_WEIGHT, Spinner

log = logging.getLogger(__name__)

SUFFIX = ".channel"
_HEADER = struct.Struct("<Q")
_CHUNK = 1 << 16
"""Bytes asked for by the first read of a frame: small frames arrive in one read."""
PARTIAL_FRAME_SECONDS = 30.0
"""How long the simulator waits for the rest of a frame whose first bytes came."""
_READABLE = select.POLLIN | select.POLLHUP | select.POLLERR


class ChannelClosed(ProtocolError):
    """The peer closed its end of the channel (it exited, or gave up on this connection)."""


def channel_path(address: str) -> Optional[str]:
    """Where the channel of the simulator listening on ``address`` lives; None for non-ipc endpoints.

    An abstract-namespace ipc endpoint (``ipc://@name``) gets an abstract socket name too.
    """
    if not address.startswith("ipc://") or len(address) == len("ipc://"):
        return None
    path = address[len("ipc://"):] + SUFFIX
    return "\0" + path[1:] if path.startswith("@") else path


def _wait(sock: socket.socket, events: int, seconds: float) -> bool:
    poller = select.poll()
    poller.register(sock, events)
    return bool(poller.poll(max(0, round(seconds * 1000))))


def write_frame(sock: socket.socket, frame: bytes, seconds: float) -> None:
    """Send ``frame`` with its length header on the non-blocking ``sock`` within ``seconds``."""
    header = _HEADER.pack(len(frame))
    if len(frame) <= _CHUNK:
        data = header + frame
        try:
            sent = sock.send(data, socket.MSG_NOSIGNAL)
        except BlockingIOError:
            sent = 0
        except OSError as err:
            raise ChannelClosed(f"the peer closed the channel ({err.strerror})") from None
        if sent == len(data):  # the usual case: a small frame goes in one call
            return
        parts = [memoryview(data)[sent:]]
    else:
        parts = [header, frame]
    deadline = time.monotonic() + seconds
    for part in parts:
        view = memoryview(part)
        while view:
            try:
                view = view[sock.send(view, socket.MSG_NOSIGNAL):]
            except BlockingIOError:
                if not _wait(sock, select.POLLOUT, deadline - time.monotonic()):
                    raise ProtocolTimeout(f"the peer took no data for {seconds:g} s") from None
            except OSError as err:  # EPIPE, ECONNRESET: the peer is gone
                raise ChannelClosed(f"the peer closed the channel ({err.strerror})") from None


def read_frame(sock: socket.socket, max_bytes: int, seconds: float) -> bytes:
    """The next frame on the non-blocking ``sock``, once it is readable; the rest of a frame
    whose first bytes came must follow within ``seconds``.

    Raises ``BlockingIOError`` when no byte is there after all, ``ChannelClosed`` at end of
    stream, ``ProtocolError`` for a frame over ``max_bytes`` or bytes beyond one frame (two
    requests in flight break the protocol's order).
    """
    chunk = _receive(sock, _CHUNK)
    deadline = time.monotonic() + seconds
    while len(chunk) < _HEADER.size:
        chunk += _receive_within(sock, _HEADER.size - len(chunk), deadline, seconds)
    (length,) = _HEADER.unpack_from(chunk)
    if length > max_bytes:
        raise ProtocolError(f"channel frame of {length} bytes is over the {max_bytes}-byte limit")
    got = len(chunk) - _HEADER.size
    if got == length:
        return chunk[_HEADER.size:]
    if got > length:
        raise ProtocolError(f"{got - length} bytes arrived beyond a {length}-byte frame: the peer sent "
                            f"a second message before the reply to its first")
    buffer = bytearray(length)
    view = memoryview(buffer)
    view[:got] = memoryview(chunk)[_HEADER.size:]
    while got < length:
        if not _wait(sock, _READABLE, deadline - time.monotonic()):
            raise ProtocolTimeout(f"a {length}-byte frame stopped after {got} bytes for {seconds:g} s")
        try:
            received = sock.recv_into(view[got:])
        except BlockingIOError:
            continue
        except OSError as err:
            raise ChannelClosed(f"the peer closed the channel ({err.strerror})") from None
        if received == 0:
            raise ChannelClosed(f"the peer closed the channel after {got} of {length} bytes")
        got += received
    return bytes(buffer)


def _receive(sock: socket.socket, size: int) -> bytes:
    try:
        chunk = sock.recv(size)
    except BlockingIOError:
        raise
    except OSError as err:
        raise ChannelClosed(f"the peer closed the channel ({err.strerror})") from None
    if not chunk:
        raise ChannelClosed("the peer closed the channel")
    return chunk


def _receive_within(sock: socket.socket, size: int, deadline: float, seconds: float) -> bytes:
    while True:
        if not _wait(sock, _READABLE, deadline - time.monotonic()):
            raise ProtocolTimeout(f"a frame's length header stopped short for {seconds:g} s")
        try:
            return _receive(sock, size)
        except BlockingIOError:
            continue


def readable(sock: socket.socket) -> Callable[[], bool]:
    """A cheap check, for spinning on, of whether ``sock`` has bytes (or an end of stream) to read."""
    poller = select.poll()
    poller.register(sock, _READABLE)
    check = poller.poll
    return lambda: bool(check(0))


class ChannelConnection:
    """The engine's end of a channel, a drop-in for ``ppx.transport.Connection``.

    After ``reset`` (a timeout, or the engine giving up on a trace) the next ``send`` connects
    afresh; the simulator drops the old connection, and with it the trace it was in.

    Args:
        address: the simulator's ipc endpoint (the channel lives beside it).
        timeout: seconds to wait for any reply before raising ``ProtocolTimeout``.
        max_frame_bytes: frames above this size are refused.
    """

    def __init__(self, address: str, timeout: float, max_frame_bytes: int) -> None:
        path = channel_path(address)
        if path is None:
            raise ValueError(f"address {address!r} is not an ipc endpoint; a channel needs one")
        self.address = address
        self.path = path
        self.timeout = timeout
        self.max_frame_bytes = max_frame_bytes
        self.keys = None  # as on a Connection without CURVE: a channel is never secured
        self._socket: Optional[socket.socket] = None
        self._readable: Callable[[], bool] = lambda: False
        self._awaiting = False
        self._spinner = Spinner(weight=CHANNEL_SPIN_WEIGHT)
        self._connect()

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
        except OSError as err:
            sock.close()
            raise ProtocolError(f"cannot open the local channel of the simulator at {self.address} "
                                f"({self.path.lstrip(chr(0))}: {err.strerror or err})") from None
        sock.setblocking(False)
        self._socket = sock
        self._readable = readable(sock)
        self._awaiting = False

    def send(self, frame: bytes) -> None:
        if self._socket is None:
            self._connect()
        if self._awaiting:
            raise ProtocolError(f"a request to {self.address} is still awaiting its reply")
        try:
            write_frame(self._socket, frame, self.timeout)
        except ProtocolTimeout as err:
            self.reset()
            raise ProtocolTimeout(f"simulator at {self.address} took no request for {self.timeout:g} s "
                                  f"({err})") from None
        except ChannelClosed:
            self.reset()
            raise ChannelClosed(f"simulator at {self.address} closed its local channel "
                                f"(did it exit?)") from None
        self._awaiting = True

    def poll(self, timeout: float) -> bool:
        """Whether the reply (or the end of the stream) has arrived within ``timeout`` seconds."""
        if self._socket is None:
            raise ProtocolError(f"connection to {self.address} is closed")
        return self._readable() or _wait(self._socket, _READABLE, timeout)

    def receive(self, timeout: Optional[float] = None, waiting_for: str = "reply") -> bytes:
        """The reply to the last request; after ``timeout`` seconds the connection is reset and
        ``ProtocolTimeout`` raised."""
        sock = self._socket
        if sock is None:
            raise ProtocolError(f"connection to {self.address} is closed")
        limit = self.timeout if timeout is None else timeout
        ready = self._spinner.wait_for(self._readable)
        while True:
            if not ready and not self.poll(limit):
                self.reset()
                raise ProtocolTimeout(f"simulator at {self.address} sent no {waiting_for} within {limit:g} s "
                                      f"(is it running? it is reached over its local channel {self.path})")
            try:
                frame = read_frame(sock, self.max_frame_bytes, self.timeout)
            except BlockingIOError:  # woken with nothing to read after all
                ready = False
                continue
            except ChannelClosed:
                self.reset()
                raise ChannelClosed(f"simulator at {self.address} closed its local channel while the "
                                    f"engine waited for its {waiting_for} (did it exit?)") from None
            except ProtocolError:
                self.reset()
                raise
            self._awaiting = False
            return frame

    def request(self, frame: bytes, waiting_for: str = "reply") -> bytes:
        self.send(frame)
        return self.receive(waiting_for=waiting_for)

    @property
    def socket(self) -> Optional[int]:
        """The socket's file descriptor, for polling many connections at once: ``zmq.Poller``
        takes it and reports it back as it is."""
        return None if self._socket is None else self._socket.fileno()

    def reset(self) -> None:
        """Drop the connection and any reply still due on it; the next ``send`` reconnects."""
        self.close()

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._awaiting = False

    def __enter__(self) -> "ChannelConnection":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ChannelServer:
    """The simulator's end: a listening Unix socket and the engines connected to it.

    Args:
        path: where to listen (from ``channel_path``); a stale file there is replaced.
        max_frame_bytes: frames above this size close the connection that sent them.
    """

    def __init__(self, path: str, max_frame_bytes: int) -> None:
        self.path = path
        self.max_frame_bytes = max_frame_bytes
        self.connections: dict[int, socket.socket] = {}
        """Connected engines by file descriptor, the form ``zmq.zmq_poll`` reports them in."""
        self.current: Optional[socket.socket] = None
        """The connection the last frame came from, which the reply goes to."""
        self.current_readable: Callable[[], bool] = lambda: False
        if not path.startswith("\0"):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self._listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._listening.bind(path)
            self._listening.listen(16)
        except OSError:
            self._listening.close()
            raise
        self._listening.setblocking(False)

    def poll_items(self) -> list[tuple[int, int]]:
        """What to poll, beside the REP socket, for a new engine or a request from a connected one."""
        return [(self._listening.fileno(), select.POLLIN)] + [(fd, _READABLE) for fd in self.connections]

    def take(self, fd: int) -> Optional[bytes]:
        """Handle ``fd``, which polled readable: accept a new engine (None), read the next frame
        from a connection (which becomes ``current``), or drop a connection that closed (None)."""
        if fd == self._listening.fileno():
            try:
                connection, _ = self._listening.accept()
            except BlockingIOError:
                return None
            connection.setblocking(False)
            self.connections[connection.fileno()] = connection
            return None
        connection = self.connections.get(fd)
        return None if connection is None else self.read(connection)

    def read(self, connection: socket.socket) -> Optional[bytes]:
        """The next frame from ``connection``, or None when none was there after all, or once the
        connection closed or broke the framing."""
        try:
            frame = read_frame(connection, self.max_frame_bytes, PARTIAL_FRAME_SECONDS)
        except BlockingIOError:
            return None
        except ChannelClosed:
            self.drop(connection)
            return None
        except ProtocolError as err:
            log.error("dropping an engine's local channel: %s", err)
            self.drop(connection)
            return None
        if connection is not self.current:
            self.current = connection
            self.current_readable = readable(connection)
        return frame

    def reply(self, frame: bytes) -> None:
        """Send ``frame`` to the engine the last frame came from (dropped if it is gone)."""
        connection = self.current
        try:
            write_frame(connection, frame, PARTIAL_FRAME_SECONDS)
        except ProtocolError as err:
            log.warning("an engine's local channel went away before its reply: %s", err)
            self.drop(connection)

    def drop(self, connection: socket.socket) -> None:
        if connection.fileno() >= 0:
            self.connections.pop(connection.fileno(), None)
        connection.close()
        if connection is self.current:
            self.current = None
            self.current_readable = lambda: False

    def close(self) -> None:
        for connection in list(self.connections.values()):
            self.drop(connection)
        self._listening.close()
        if not self.path.startswith("\0"):
            try:
                os.unlink(self.path)
            except OSError:
                pass
