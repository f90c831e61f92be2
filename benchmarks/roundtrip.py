"""Round trips per second: raw pyzmq REQ/REP ping-pong vs the engine driving the Gaussian simulator.

Both run over ipc between two processes on this machine, in the same run. A
Gaussian trace is four round trips (Run->Sample, SampleResult->Observe,
ObserveResult->Observe, ObserveResult->RunResult), with the engine sampling mu
and both observations from their distributions as it does for training data.

    python -m benchmarks.roundtrip [--seconds 5]
"""

from __future__ import annotations

import argparse
import time

import torch

import zmq

from benchmarks._processes import machine, simulator_process
from inference.remote import RemoteSimulator

ROUND_TRIPS_PER_TRACE = 4


def raw_round_trips_per_second(seconds: float, frame_size: int = 160) -> float:
    with simulator_process("benchmarks.echo_server") as address:
        socket = zmq.Context.instance().socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(address)
        frame = b"x" * frame_size
        for _ in range(500):  # warm up, and wait for the server to bind
            socket.send(frame)
            socket.recv()
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            for _ in range(200):
                socket.send(frame)
                socket.recv()
            count += 200
        elapsed = time.perf_counter() - started
        socket.close()
    return count / elapsed


def engine_round_trips_per_second(seconds: float) -> float:
    with simulator_process("simulators.gaussian") as address:
        with RemoteSimulator(address, handshake_timeout=60) as simulator:
            for _ in range(200):
                simulator.run()
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                for _ in range(50):
                    simulator.run()
                count += 50
            elapsed = time.perf_counter() - started
    return count * ROUND_TRIPS_PER_TRACE / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the ppx command and the simulators run
    raw = raw_round_trips_per_second(args.seconds)
    engine = engine_round_trips_per_second(args.seconds)
    print(f"machine: {machine()}")
    print(f"raw pyzmq REQ/REP ping-pong:        {raw:9.0f} round trips/s ({1e6 / raw:.0f} us each)")
    print(f"engine <-> Python Gaussian simulator: {engine:9.0f} round trips/s ({1e6 / engine:.0f} us each)")
    print(f"ratio engine / raw: {engine / raw:.2f} (target 0.70; reference Python engine about 0.25)")


if __name__ == "__main__":
    main()
