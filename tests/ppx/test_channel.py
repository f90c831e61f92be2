"""The local channel: length-prefixed frames over a Unix stream socket, and both of its ends."""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Iterator

import pytest

from ppx.channel import (ChannelClosed, ChannelConnection, ChannelServer, channel_path, read_frame,
                         write_frame)
from ppx.errors import ProtocolError, ProtocolTimeout
from ppx.transport import Connection, Listener

LIMIT = 1 << 27


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    for end in (left, right):
        end.setblocking(False)
    yield left, right
    left.close()
    right.close()


def wait_readable(sock: socket.socket) -> None:
    from select import POLLIN, poll
    poller = poll()
    poller.register(sock, POLLIN)
    assert poller.poll(5000), "nothing arrived"


@pytest.mark.parametrize("size", [0, 1, 160, 65536 - 8, 65536, 5_000_003])
def test_frames_of_any_size_arrive_whole(pair, size):
    left, right = pair
    frame = bytes(range(256)) * (size // 256) + bytes(size % 256)
    # A big frame fills the socket buffer: the reader must drain it while the writer writes.
    writer = threading.Thread(target=write_frame, args=(left, frame, 10.0))
    writer.start()
    wait_readable(right)
    assert read_frame(right, LIMIT, 10.0) == frame
    writer.join()


def test_a_frame_over_the_limit_is_refused(pair):
    left, right = pair
    left.send(struct.pack("<Q", 1 << 40))
    wait_readable(right)
    with pytest.raises(ProtocolError, match="over the 1000-byte limit"):
        read_frame(right, 1000, 1.0)


def test_bytes_beyond_one_frame_break_the_order(pair):
    left, right = pair
    left.send(struct.pack("<Q", 2) + b"ab" + struct.pack("<Q", 1) + b"c")
    time.sleep(0.05)
    with pytest.raises(ProtocolError, match="second message before the reply"):
        read_frame(right, LIMIT, 1.0)


def test_a_frame_that_stops_short_times_out(pair):
    left, right = pair
    left.send(struct.pack("<Q", 100) + b"only ten b")
    wait_readable(right)
    started = time.monotonic()
    with pytest.raises(ProtocolTimeout, match="stopped after 10 bytes"):
        read_frame(right, LIMIT, 0.3)
    assert time.monotonic() - started < 2


def test_end_of_stream_is_a_closed_channel(pair):
    left, right = pair
    left.send(struct.pack("<Q", 100) + b"partial")
    left.close()
    wait_readable(right)
    with pytest.raises(ChannelClosed, match="after 7 of 100 bytes"):
        read_frame(right, LIMIT, 1.0)
    with pytest.raises(ChannelClosed):
        read_frame(right, LIMIT, 1.0)


def test_nothing_to_read_is_not_mistaken_for_a_close(pair):
    _, right = pair
    with pytest.raises(BlockingIOError):
        read_frame(right, LIMIT, 1.0)


def test_channel_paths_sit_beside_ipc_endpoints_only():
    assert channel_path("ipc:///tmp/sim.sock") == "/tmp/sim.sock.channel"
    assert channel_path("ipc://@sim") == "\0sim.channel"
    assert channel_path("tcp://127.0.0.1:5555") is None
    assert channel_path("inproc://sim") is None


@pytest.fixture
def listener(tmp_path) -> Iterator[Listener]:
    listener = Listener(f"ipc://{tmp_path}/sim.sock", channel=True)
    yield listener
    listener.close()


def serve_echo(listener: Listener, count: int) -> threading.Thread:
    def echo() -> None:
        for _ in range(count):
            listener.reply(b"echo " + listener.receive())
    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    return thread


def test_listener_answers_the_channel_and_its_endpoint_alike(listener):
    assert listener.channel_path == channel_path(listener.address)
    server = serve_echo(listener, 6)
    with ChannelConnection(listener.address, timeout=5, max_frame_bytes=LIMIT) as channel, \
            Connection(listener.address, timeout=5) as endpoint:
        for i in range(3):  # interleaved: each reply goes back the way its request came
            assert channel.request(b"channel %d" % i) == b"echo channel %d" % i
            assert endpoint.request(b"endpoint %d" % i) == b"echo endpoint %d" % i
    server.join(5)
    assert not server.is_alive()


def test_a_reset_connection_reconnects_and_the_listener_forgets_the_old_one(listener):
    server = serve_echo(listener, 3)
    with ChannelConnection(listener.address, timeout=5, max_frame_bytes=LIMIT) as channel:
        assert channel.request(b"one") == b"echo one"
        channel.reset()
        assert channel.socket is None
        assert channel.request(b"two") == b"echo two"
        assert channel.request(b"three") == b"echo three"
    server.join(5)
    assert len(listener._channel.connections) == 1


def test_no_reply_times_out_naming_the_address(listener):
    with ChannelConnection(listener.address, timeout=5, max_frame_bytes=LIMIT) as channel:
        channel.send(b"anyone?")
        started = time.monotonic()
        with pytest.raises(ProtocolTimeout, match=f"{listener.address} sent no reply within 0.3 s"):
            channel.receive(0.3)
        assert time.monotonic() - started < 2
        assert channel.socket is None  # reset: a late reply cannot be taken for the next one


def test_a_simulator_that_goes_away_is_reported_at_once(tmp_path):
    listener = Listener(f"ipc://{tmp_path}/gone.sock", channel=True)
    channel = ChannelConnection(listener.address, timeout=30, max_frame_bytes=LIMIT)
    try:
        accepted = threading.Thread(target=lambda: listener.receive(), daemon=True)
        accepted.start()
        channel.send(b"hello")
        accepted.join(5)
        started = time.monotonic()
        listener.close()
        with pytest.raises(ChannelClosed, match="closed its local channel"):
            channel.receive()
        assert time.monotonic() - started < 2
        with pytest.raises(ProtocolError, match="cannot open the local channel"):
            channel.send(b"again")
    finally:
        channel.close()


def test_secured_or_tcp_listeners_open_no_channel(tmp_path, curve_keys):
    for listener in (Listener(f"ipc://{tmp_path}/secured.sock", curve=curve_keys, channel=True),
                     Listener("tcp://127.0.0.1:0", channel=True),
                     Listener(f"ipc://{tmp_path}/plain.sock")):
        try:
            assert listener.channel_path is None
        finally:
            listener.close()


def test_channel_server_replaces_a_stale_socket_file(tmp_path):
    path = str(tmp_path / "stale.channel")
    ChannelServer(path, LIMIT)._listening.close()  # as a killed simulator leaves it
    server = ChannelServer(path, LIMIT)
    server.close()
