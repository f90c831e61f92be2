"""Round trips per second: raw pyzmq REQ/REP ping-pong vs the engine driving the Gaussian simulator.

All run between two processes on this machine, in the same run: the measurements
alternate in short slices, so that a change in the machine's load hits all alike.
A Gaussian trace is four round trips (Run->Sample, SampleResult->Observe,
ObserveResult->Observe, ObserveResult->RunResult), with the engine sampling mu and
both observations from their distributions as it does for training data.

The engine is measured twice: on the negotiated local channel (``ppx.channel``,
what an ipc simulator of ours gets) and on the ZeroMQ ipc socket alone (what a
plain PPX peer gets). Two more rows echo the same bytes through each socket layer
(``ppx.transport`` with its timeouts, readiness spin and handshake monitor, and
``ppx.channel``), so that the gap to raw pyzmq splits into what the socket layer
costs and what the protocol and the model cost.

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
from ppx.channel import ChannelConnection
from ppx.transport import MAX_FRAME_BYTES, Connection

ROUND_TRIPS_PER_TRACE = 4


def raw_round_trips_per_second(socket: zmq.Socket, frame: bytes, seconds: float) -> float:
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(200):
            socket.send(frame)
            socket.recv()
        count += 200
    return count / (time.perf_counter() - started)


def transport_round_trips_per_second(connection: Connection | ChannelConnection, frame: bytes,
                                     seconds: float) -> float:
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
    rows = {name: [] for name in ("raw", "transport", "channel", "engine_zmq", "engine")}
    with simulator_process("benchmarks.echo_server") as echo, \
            simulator_process("benchmarks.echo_server", "--transport", "ppx") as ppx_echo, \
            simulator_process("benchmarks.echo_server", "--transport", "channel") as channel_echo, \
            simulator_process("simulators.gaussian") as address, \
            simulator_process("simulators.gaussian") as zmq_address, \
            Connection(ppx_echo, timeout=60) as connection:
        socket = zmq.Context.instance().socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(echo)
        frame = b"x" * 160
        try:
            for _ in range(500):  # warm up, and wait for the servers to bind
                socket.send(frame)
                socket.recv()
                connection.request(frame)
            with RemoteSimulator(address, handshake_timeout=60) as simulator, \
                    RemoteSimulator(zmq_address, handshake_timeout=60, local_channel=False) as zmq_simulator, \
                    ChannelConnection(channel_echo, 60, MAX_FRAME_BYTES) as channel:
                if not isinstance(simulator.connection, ChannelConnection):
                    raise SystemExit("the Gaussian simulator did not negotiate the local channel")
                for _ in range(200):
                    simulator.run()
                    zmq_simulator.run()
                    channel.request(frame)
                for _ in range(args.slices):
                    rows["raw"].append(raw_round_trips_per_second(socket, frame, seconds))
                    rows["transport"].append(transport_round_trips_per_second(connection, frame, seconds))
                    rows["channel"].append(transport_round_trips_per_second(channel, frame, seconds))
                    rows["engine_zmq"].append(engine_round_trips_per_second(zmq_simulator, seconds))
                    rows["engine"].append(engine_round_trips_per_second(simulator, seconds))
        finally:
            socket.close()
    rate = {name: statistics.median(rates) for name, rates in rows.items()}
    raw = rate["raw"]
    ratios = [e / r for e, r in zip(rows["engine"], rows["raw"])]

    def line(label: str, name: str) -> str:
        return (f"{label:<44} {rate[name]:7.0f} round trips/s ({1e6 / rate[name]:4.0f} us each; "
                f"{rate[name] / raw:.2f} of raw)")

    print(f"machine: {machine()}; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"{'raw pyzmq REQ/REP ping-pong:':<44} {raw:7.0f} round trips/s ({1e6 / raw:4.0f} us each)")
    print(line("same bytes through ppx.transport:", "transport"))
    print(line("same bytes through ppx.channel:", "channel"))
    print(line("engine <-> Gaussian simulator, ZeroMQ only:", "engine_zmq"))
    print(line("engine <-> Gaussian simulator, local channel:", "engine"))
    print(f"ratio engine / raw: {rate['engine'] / raw:.2f} (medians of {args.slices} alternating slices; "
          f"slice ratios {min(ratios):.2f}-{max(ratios):.2f}; target 0.70, reference Python engine about 0.25); "
          f"the local channel is {rate['engine'] / rate['engine_zmq']:.2f}x the ZeroMQ-only engine")


if __name__ == "__main__":
    main()
