"""CPU per step-by-step Gaussian trace on each side of PPX, without sockets, against the model's own work.

The frames of one trace are recorded once; then the engine's trace job is fed the
simulator's frames, and the simulator's session the engine's frames, so each side's
Python work is timed alone (process CPU time, the lower quartile of many batches).
The comparison point in the same run is the work the model itself does per trace
(building its likelihood's pyro distribution), which no protocol can save. Run it on two commits to compare them: it uses only interfaces both have.

    python -m benchmarks.trace_cpu
"""

from __future__ import annotations

import time
from typing import Callable

import pyro.distributions as dist
import torch

from benchmarks._processes import machine
from inference.remote import trace_job
from ppx import codec
from ppx.simulator import _Session
from simulators.gaussian import NOISE_SCALE, model


class _Recorder:
    """Stands in for the simulator's socket: hands each reply to the engine's job and keeps both sides' frames."""

    def __init__(self) -> None:
        self.job = trace_job()
        self.pending = next(self.job)
        self.simulator_frames: list[bytes] = []
        self.engine_frames: list[bytes] = [self.pending]

    def reply(self, frame: bytes) -> None:
        self.simulator_frames.append(frame)
        try:
            self.pending = self.job.send(frame)
            self.engine_frames.append(self.pending)
        except StopIteration:
            pass

    def receive(self) -> bytes:
        return self.pending


class _Replay:
    """Stands in for the engine: answers the simulator with recorded frames."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames
        self.next = 0

    def reply(self, frame: bytes) -> None:
        pass

    def receive(self) -> bytes:
        self.next += 1
        return self.frames[self.next - 1]


def microseconds(function: Callable[[], object], calls: int = 400, batches: int = 15) -> float:
    for _ in range(200):
        function()
    timings = []
    for _ in range(batches):
        started = time.process_time()
        for _ in range(calls):
            function()
        timings.append((time.process_time() - started) / calls)
    return sorted(timings)[len(timings) // 4] * 1e6


def main() -> None:
    torch.set_num_threads(1)
    recorder = _Recorder()
    _Session(model, recorder, "gaussian", "recorder").answer(codec.decode(recorder.pending))
    run, answers = recorder.engine_frames[0], recorder.engine_frames[1:]

    def engine_side() -> None:
        job = trace_job()
        next(job)
        try:
            for frame in recorder.simulator_frames:
                job.send(frame)
        except StopIteration:
            pass

    replay = _Replay(answers)
    session = _Session(model, replay, "gaussian", "replay")

    def simulator_side() -> None:
        replay.next = 0
        session.answer(codec.decode(run))

    mu = torch.tensor(0.3, dtype=torch.float64)

    def models_own_work() -> None:  # its likelihood; the prior is built once, at import
        dist.Normal(mu, NOISE_SCALE)

    engine, simulator, own = microseconds(engine_side), microseconds(simulator_side), microseconds(models_own_work)
    print(f"machine: {machine()}")
    print(f"engine side:    {engine:6.0f} us per trace")
    print(f"simulator side: {simulator:6.0f} us per trace, of which the model's own distributions about {own:.0f} us")
    print(f"both sides:     {engine + simulator:6.0f} us per trace ({(engine + simulator) / 4:.0f} us per round trip); "
          f"protocol work beyond the model's own: {engine + simulator - own:.0f} us")


if __name__ == "__main__":
    main()
