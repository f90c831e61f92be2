"""Round trips per second: raw pyzmq REQ/REP ping-pong vs the engine driving the Gaussian simulator.

Both run over ipc between two processes on this machine, in the same run: the
measurements alternate in short slices, so that a change in the machine's load
hits all alike. A Gaussian trace is four round trips (Run->Sample,
SampleResult->Observe, ObserveResult->Observe, ObserveResult->RunResult), with
the engine sampling mu and both observations from their distributions as it does
for training data. A third measurement echoes the same bytes through ppx's own
socket layer (``ppx.transport.Connection`` and ``Listener``: timeouts, readiness
spin, handshake monitor), so that the gap between raw and engine splits into what
the socket layer costs and what the protocol and the model cost.

    python -m benchmarks.roundtrip [--seconds 5] [--slices 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

import zmq

from benchmarks._processes import machine, simulator_process
from inference.remote import RemoteSimulator
from ppx.transport import Connection

ROUND_TRIPS_PER_TRACE = 4


def raw_round_trips_per_second(socket: zmq.Socket, frame: bytes, seconds: float) -> float:
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(200):
            socket.send(frame)
            socket.recv()
        count += 200
    return count / (time.perf_counter() - started)


def transport_round_trips_per_second(connection: Connection, frame: bytes, seconds: float) -> float:
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(200):
            connection.request(frame)
        count += 200
    return count / (time.perf_counter() - started)


def engine_round_trips_per_second(simulator: RemoteSimulator, seconds: float) -> float:
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(50):
            simulator.run()
        count += 50
    return count * ROUND_TRIPS_PER_TRACE / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per measurement, over all slices")
    parser.add_argument("--slices", type=int, default=10, help="alternating slices per measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the ppx command and the simulators run
    seconds = args.seconds / args.slices
    load_before = os.getloadavg()[0]
    raw, transport, engine = [], [], []
    with simulator_process("benchmarks.echo_server") as echo, \
            simulator_process("benchmarks.echo_server", "--transport", "ppx") as ppx_echo, \
            simulator_process("simulators.gaussian") as address, Connection(ppx_echo, timeout=60) as connection:
        socket = zmq.Context.instance().socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(echo)
        frame = b"x" * 160
        try:
            for _ in range(500):  # warm up, and wait for the servers to bind
                socket.send(frame)
                socket.recv()
                connection.request(frame)
            with RemoteSimulator(address, handshake_timeout=60) as simulator:
                for _ in range(200):
                    simulator.run()
                for _ in range(args.slices):
                    raw.append(raw_round_trips_per_second(socket, frame, seconds))
                    transport.append(transport_round_trips_per_second(connection, frame, seconds))
                    engine.append(engine_round_trips_per_second(simulator, seconds))
        finally:
            socket.close()
    raw_rate, transport_rate, engine_rate = (statistics.median(rates) for rates in (raw, transport, engine))
    ratios = [e / r for e, r in zip(engine, raw)]
    print(f"machine: {machine()}; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"raw pyzmq REQ/REP ping-pong:          {raw_rate:9.0f} round trips/s ({1e6 / raw_rate:.0f} us each)")
    print(f"same bytes through ppx.transport:     {transport_rate:9.0f} round trips/s "
          f"({1e6 / transport_rate:.0f} us each; {transport_rate / raw_rate:.2f} of raw)")
    print(f"engine <-> Python Gaussian simulator: {engine_rate:9.0f} round trips/s ({1e6 / engine_rate:.0f} us each)")
    print(f"ratio engine / raw: {engine_rate / raw_rate:.2f} (medians of {args.slices} alternating slices; "
          f"slice ratios {min(ratios):.2f}-{max(ratios):.2f}; target 0.70, reference Python engine about 0.25)")


if __name__ == "__main__":
    main()
