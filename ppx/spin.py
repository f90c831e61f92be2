"""Waiting for a reply without sleeping, for as long as that pays: the receive spin of every socket end."""

from __future__ import annotations

import time
from typing import Callable

import zmq

SPIN_SECONDS = 500e-6
"""How long a receive checks for a message before sleeping in the kernel."""
CHANNEL_SPIN_WEIGHT = 0.2
"""How much one lost spin counts on the local channel (see ``Spinner``)."""
_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)  # plain ints: pyzmq's enums cost microseconds per use


class Spinner:
    """Checks for a message without sleeping, for as long as that pays.

    A reply that arrives within a round trip's usual span is picked up without the
    process going to sleep and paying the scheduler's wake-up latency. That holds
    while the process has a core to itself: on a machine with more runnable
    processes than cores, a spinning process uses up its share of the CPU and then
    waits for the scheduler, far longer than a wake-up. A spin loses its core when its
    wall time runs ahead of its CPU time by more than ``LOST_SECONDS``; once an average
    over recent spins, in which the latest weighs ``weight``, passes ``LOST_SHARE``,
    spinning is turned off for ``PAUSE_SECONDS``: receives sleep at once, and spinning
    is tried again afterwards.

    On a ZeroMQ socket one lost spin is enough (``weight`` 1): the core usually went to
    one of ZeroMQ's own I/O threads, which needs it to deliver the very message being
    waited for. On the local channel there are no such threads, and a single lost spin
    says little (a virtual machine's host takes the core away now and then even when
    the guest is idle: about one spin in 10,000 here), so there ``weight`` is 0.2 and
    spinning pauses once two spins within four have lost their core.
    """

    LOST_SECONDS = 100e-6
    LOST_SHARE = 0.3
    PAUSE_SECONDS = 1.0

    def __init__(self, seconds: float = SPIN_SECONDS, weight: float = 1.0) -> None:
        self.seconds = seconds
        self.weight = weight
        self.paused_until = 0.0
        self.lost_share = 0.0

    def wait(self, socket: zmq.Socket) -> bool:
        """True once a message is waiting on ``socket``; False if none came while spinning."""
        events = socket.getsockopt  # reading ZMQ_EVENTS is the cheapest readiness check pyzmq has
        return self.wait_for(lambda: events(_EVENTS) & _POLLIN)

    def wait_for(self, ready: Callable[[], object]) -> bool:
        """True once ``ready()`` is; False if it did not become so while spinning."""
        if ready():
            return True
        started = time.perf_counter()
        if started < self.paused_until:
            return False
        cpu_started = time.thread_time()
        deadline = started + self.seconds
        while True:
            if ready():
                result = True
                break
            if time.perf_counter() >= deadline:
                result = False
                break
        ended = time.perf_counter()
        lost = (ended - started) - (time.thread_time() - cpu_started) > self.LOST_SECONDS
        self.lost_share += self.weight * (lost - self.lost_share)
        if self.lost_share > self.LOST_SHARE:
            self.paused_until = ended + self.PAUSE_SECONDS
            self.lost_share = 0.0
        return result
