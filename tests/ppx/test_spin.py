"""The receive spin (ppx.spin): it sees waiting messages, and stops spinning once a spin lost its core."""

from __future__ import annotations

import time
import uuid
from typing import Iterator

import pytest
import zmq

from ppx.spin import CHANNEL_SPIN_WEIGHT, Spinner
from ppx.transport import Connection, Listener


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket, zmq.Socket]]:
    context = zmq.Context.instance()
    sender, receiver = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    try:
        for socket in (sender, receiver):
            socket.setsockopt(zmq.LINGER, 0)
        address = f"inproc://spin-test-{uuid.uuid4().hex}"
        receiver.bind(address)
        sender.connect(address)
        yield sender, receiver
    finally:
        sender.close()
        receiver.close()


def test_a_waiting_message_is_seen(pair) -> None:
    sender, receiver = pair
    spinner = Spinner(seconds=0.0)
    sender.send(b"x")
    deadline = time.monotonic() + 5
    while not spinner.wait(receiver):  # inproc delivery is asynchronous
        assert time.monotonic() < deadline, "the message never showed up"
    assert receiver.recv() == b"x"


def test_no_message_means_false_after_the_spin(pair) -> None:
    _, receiver = pair
    assert Spinner(seconds=1e-4).wait(receiver) is False


def test_a_spin_that_lost_its_core_pauses_spinning(pair) -> None:
    _, receiver = pair
    spinner = Spinner(seconds=1e-4)
    spinner.LOST_SECONDS = -1.0  # count every spin as having lost its core
    spinner.wait(receiver)
    assert spinner.paused_until > time.perf_counter()
    spinner.seconds = 60.0  # were it still spinning, the next wait would take a minute
    assert spinner.wait(receiver) is False


def test_on_the_channel_two_lost_spins_close_together_pause_spinning() -> None:
    spinner = Spinner(seconds=1e-4, weight=CHANNEL_SPIN_WEIGHT)
    spinner.LOST_SECONDS = -1.0
    spinner.wait_for(lambda: False)
    assert spinner.paused_until == 0.0
    spinner.LOST_SECONDS = float("inf")
    for _ in range(2):
        spinner.wait_for(lambda: False)
    spinner.LOST_SECONDS = -1.0  # the fourth spin loses its core too
    spinner.wait_for(lambda: False)
    assert spinner.paused_until > time.perf_counter()
    spinner.seconds = 60.0  # were it still spinning, the next wait would take a minute
    assert spinner.wait_for(lambda: False) is False


def test_on_the_channel_a_lost_spin_now_and_then_keeps_spinning() -> None:
    spinner = Spinner(seconds=1e-4, weight=CHANNEL_SPIN_WEIGHT)
    for spin in range(100):
        spinner.LOST_SECONDS = -1.0 if spin % 10 == 0 else float("inf")  # one in ten loses its core
        spinner.wait_for(lambda: False)
    assert spinner.paused_until == 0.0


def test_a_spin_that_kept_its_core_keeps_spinning(pair) -> None:
    _, receiver = pair
    spinner = Spinner(seconds=1e-4)
    spinner.LOST_SECONDS = float("inf")
    spinner.wait(receiver)
    assert spinner.paused_until == 0.0


def test_paused_ends_still_exchange_messages(tmp_path) -> None:
    listener = Listener(f"ipc://{tmp_path}/spin.sock")
    connection = Connection(listener.bound_address, timeout=10)
    try:
        for end in (listener, connection):
            end._spinner.paused_until = float("inf")
        for i in range(3):
            connection.send(b"ping %d" % i)
            assert listener.receive() == b"ping %d" % i
            listener.reply(b"pong %d" % i)
            assert connection.receive() == b"pong %d" % i
    finally:
        connection.close()
        listener.close()
