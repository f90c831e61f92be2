"""A pool of simulator processes launched and supervised by the engine.

``SimulatorPool("python -m simulators.gaussian", workers=4)`` starts four copies,
each on its own ipc address, and interleaves jobs over them with one poller. A
copy that dies, stops answering or breaks the protocol (a reply out of order, a
frame that does not decode) is killed and restarted; the trace it was in the
middle of is dropped, counted in ``dropped``, and run again, so a run always
completes with every trace it asked for. A model that raises (``SimulatorError``)
stops the run instead: a fresh copy would raise alike. On Linux the copies are
killed by the kernel when the engine's process exits, however it exits.

Copies that wait for a proposal from the engine (an IC network) are answered
together, with one batched network call; a copy that asks first waits for the
others, for at most as long as such a call takes.

Every job draws from its own random stream (``inference.streams``), seeded in job
order, so under ``torch.manual_seed`` a run gives the same traces whatever the
number of copies and whichever copy served which job. IC proposals join in when the
pool is ``reproducible``, at the price of a network head call per trace rather
than per batch.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shlex
import subprocess
import sys
import time
from collections import deque
from typing import Callable, Optional, Sequence

import zmq

from inference.child_lifetime import dies_with_this_process
from inference.controllers import PRIOR, Controller
from inference.remote import (Job, Observations, ProposalRequest, RemoteSimulator, Stages, answer_proposals,
                              batch_job, trace_job)
from inference.streams import Seed, Stream, job_seeds
from inference.trace import Trace
from ppx.channel import channel_path
from ppx.curve import ENVIRONMENT_VARIABLE, KeyDirectory
from ppx.errors import ProtocolError, SimulatorError
from ppx.transport import fresh_ipc_address

log = logging.getLogger(__name__)

ADDRESS_PLACEHOLDER = "{address}"


def simulator_argv(command: str | Sequence[str], address: str) -> list[str]:
    """The command line for one copy: ``{address}`` is replaced, else ``--address ADDR`` appended.

    A command starting with ``python`` or ``python3`` runs under the engine's own
    interpreter, so a simulator launched from a virtual environment sees its packages.
    """
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if not argv:
        raise ValueError("simulator command is empty")
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    if any(ADDRESS_PLACEHOLDER in arg for arg in argv):
        return [arg.replace(ADDRESS_PLACEHOLDER, address) for arg in argv]
    return argv + ["--address", address]


class _Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: Optional[subprocess.Popen] = None
        self.simulator: Optional[RemoteSimulator] = None
        self.job: Optional[Job] = None
        self.job_index = -1
        self.stream: Optional[Stream] = None
        self.polled: object = None
        self.deadline = 0.0
        self.address = ""


class SimulatorPool:
    """``workers`` copies of a simulator command, supervised and used together.

    Args:
        command: the simulator's command line (string or argv list).
        workers: how many copies to run.
        timeout: seconds a copy may take to answer one request before it is
            declared hung and restarted.
        startup_timeout: seconds a new copy may take to answer its Handshake.
        max_restarts: give up (``ProtocolError``) after this many restarts in one pool.
        stages: surrogates by stage name, used for stages the simulators offer
            (engine-driven traces only; batched prior traces run every stage locally).
        curve: a key directory from ``ppx keys``: the copies are launched with it as
            ``$PPX_CURVE`` and the engine authenticates with it; None takes ``$PPX_CURVE``
            when it is set, ``""`` means none.
        reproducible: draw batched IC proposals from each trace's own stream too, so that a
            seeded run repeats them (to the rounding of the batched LSTM step).
    """

    GATHER_CAP_SECONDS = 5e-3
    """The longest a copy waiting for a proposal waits for the others to join its batch."""

    def __init__(self, command: str | Sequence[str], workers: int = 2, *, timeout: float = 30.0,
                 startup_timeout: float = 60.0, max_restarts: int = 100,
                 stages: Optional[Stages] = None, curve: Optional[KeyDirectory] = None,
                 reproducible: bool = False) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.command = command
        self.timeout = timeout
        self.startup_timeout = startup_timeout
        self.max_restarts = max_restarts
        self.stages = dict(stages or {})
        self.curve = curve
        self.reproducible = reproducible
        self.restarts = 0
        self.dropped = 0
        self._gather_seconds = 0.0
        self._workers = [_Worker(i) for i in range(workers)]
        try:
            for worker in self._workers:
                self._spawn(worker)
            for worker in self._workers:
                self._connect(worker)
        except BaseException:
            self.close()
            raise

    def _spawn(self, worker: _Worker) -> None:
        worker.address = fresh_ipc_address(f"ppx-worker{worker.index}")
        environment = None if self.curve is None else {**os.environ, ENVIRONMENT_VARIABLE: os.fspath(self.curve)}
        worker.process = subprocess.Popen(simulator_argv(self.command, worker.address),
                                          stdin=subprocess.DEVNULL, stdout=_child_stdout(), env=environment,
                                          preexec_fn=dies_with_this_process())

    def _connect(self, worker: _Worker) -> None:
        process = worker.process
        try:
            worker.simulator = RemoteSimulator(worker.address, timeout=self.timeout,
                                               handshake_timeout=self.startup_timeout,
                                               alive=lambda: process.poll() is None, curve=self.curve)
        except ProtocolError as err:
            command = shlex.join(simulator_argv(self.command, worker.address))
            if process.poll() is not None:
                raise ProtocolError(f"simulator `{command}` exited with code {process.returncode} "
                                    f"before answering its Handshake") from None
            raise ProtocolError(f"simulator `{command}`: {err}") from None

    def _restart(self, worker: _Worker, why: str) -> None:
        self.restarts += 1
        log.warning("simulator copy %d %s; restarting it (restart %d)", worker.index, why, self.restarts)
        if self.restarts > self.max_restarts:
            raise ProtocolError(f"simulators were restarted {self.restarts} times; giving up ({why})")
        self._stop(worker)
        self._spawn(worker)
        self._connect(worker)

    @staticmethod
    def _stop(worker: _Worker) -> None:
        if worker.simulator is not None:
            worker.simulator.close()
            worker.simulator = None
        if worker.process is not None and worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()
        if worker.address.startswith("ipc://"):  # a killed simulator leaves its socket files
            for path in (worker.address[len("ipc://"):], channel_path(worker.address)):
                with contextlib.suppress(OSError):
                    os.unlink(path)

    @property
    def workers(self) -> int:
        return len(self._workers)

    @property
    def processes(self) -> list[subprocess.Popen]:
        return [worker.process for worker in self._workers]

    @property
    def supports_batches(self) -> bool:
        return all(worker.simulator.supports_batches for worker in self._workers)

    @property
    def model_name(self) -> str:
        return self._workers[0].simulator.model_name

    def execute(self, jobs: Sequence[Callable[[], Job]],
                on_done: Optional[Callable[[list[Trace]], None]] = None,
                seeds: Optional[Sequence[int]] = None) -> list[list[Trace]]:
        """Run every job, interleaved over the copies; ``jobs[i]()`` makes job i afresh
        (it is made again if its copy fails), and it draws from the stream ``seeds[i]``
        (by default seeds from torch's generator). Results come back in job order."""
        results: list[Optional[list[Trace]]] = [None] * len(jobs)
        seeds = job_seeds(len(jobs)) if seeds is None else seeds
        queue = deque(range(len(jobs)))
        poller = zmq.Poller()
        busy: dict[zmq.Socket, _Worker] = {}

        def start(worker: _Worker) -> None:
            index = queue.popleft()
            worker.job, worker.job_index, worker.stream = jobs[index](), index, Stream(seeds[index])
            with worker.stream:
                frame = next(worker.job)
            worker.simulator.connection.send(frame)
            worker.deadline = time.monotonic() + self.timeout
            # Kept, as a reset connection no longer knows what it was polled by.
            worker.polled = worker.simulator.connection.socket
            busy[worker.polled] = worker
            poller.register(worker.polled, zmq.POLLIN)

        def release(worker: _Worker) -> None:
            if worker.polled in busy:
                poller.unregister(worker.polled)
                del busy[worker.polled]
            worker.job = worker.polled = worker.stream = None

        def drop_and_restart(worker: _Worker, why: str) -> None:
            """Drop the worker's partial trace, restart its copy and run the job again first."""
            queue.appendleft(worker.job_index)
            release(worker)
            self.dropped += 1
            self._restart(worker, why)
            start(worker)

        def step(worker: _Worker, waiting: list[tuple[_Worker, ProposalRequest]]) -> None:
            """Hand the worker's reply to its job and send what the job asks next,
            or add the worker to ``waiting`` when the job asks for a proposal."""
            try:
                reply = worker.simulator.connection.receive(0)
                with worker.stream:
                    frame = worker.job.send(reply)
            except StopIteration as done:
                results[worker.job_index] = done.value
                release(worker)
                if on_done is not None:
                    on_done(done.value)
                if queue:
                    start(worker)
                return
            except SimulatorError:
                raise  # the model itself failed: a fresh copy would fail alike
            except ProtocolError as err:
                drop_and_restart(worker, f"broke the protocol ({err})")
                return
            if isinstance(frame, ProposalRequest):
                frame.stream = worker.stream if self.reproducible else None
                waiting.append((worker, frame))
                return
            worker.simulator.connection.send(frame)
            worker.deadline = time.monotonic() + self.timeout

        def gather(waiting: list[tuple[_Worker, ProposalRequest]]) -> None:
            """Keep serving the other copies until they too wait for a proposal, for at
            most as long as the last batched answer took: all of them then share one
            network call, and waiting never costs more than the call it may save."""
            until = time.perf_counter() + self._gather_seconds
            while len(waiting) < len(busy):
                left = until - time.perf_counter()
                if left <= 0:
                    return
                for socket, _ in poller.poll(math.ceil(left * 1000)):
                    step(busy[socket], waiting)

        try:
            for worker in self._workers:
                if queue:
                    start(worker)
            while busy:
                waiting: list[tuple[_Worker, ProposalRequest]] = []
                for socket, _ in poller.poll(200):
                    step(busy[socket], waiting)
                if waiting:
                    gather(waiting)
                    started = time.perf_counter()
                    answers = answer_proposals([request for _, request in waiting])
                    self._gather_seconds = min(time.perf_counter() - started, self.GATHER_CAP_SECONDS)
                    for (worker, _), answer in zip(waiting, answers):
                        with worker.stream:
                            frame = worker.job.send(answer)
                        worker.simulator.connection.send(frame)
                        worker.deadline = time.monotonic() + self.timeout
                now = time.monotonic()
                for worker in list(busy.values()):
                    died = worker.process.poll() is not None
                    if died or now > worker.deadline:
                        drop_and_restart(worker, f"exited with code {worker.process.returncode}" if died
                                         else f"sent nothing for {self.timeout:g} s")
        finally:
            for worker in list(busy.values()):
                release(worker)
                if worker.simulator is not None:
                    worker.simulator.connection.reset()
        return results  # type: ignore[return-value]

    def run_many(self, controllers: Sequence[Controller], observations: Optional[Observations] = None,
                 on_done: Optional[Callable[[list[Trace]], None]] = None, seed: Seed = None) -> list[Trace]:
        """One engine-driven trace per controller, in parallel over the copies; ``seed`` (by
        default one from torch's generator) fixes their random streams."""
        jobs = [(lambda c=c: trace_job(c, observations, self.stages)) for c in controllers]
        return [traces[0] for traces in self.execute(jobs, on_done, job_seeds(len(jobs), seed))]

    def prior(self, num_traces: int, observations: Optional[Observations] = None, batch_size: int = 64,
              on_done: Optional[Callable[[list[Trace]], None]] = None, seed: Seed = None) -> list[Trace]:
        """Prior traces, in batches sampled by the simulators when they all support it; ``seed``
        as for ``run_many``."""
        if not self.supports_batches:
            return self.run_many([PRIOR] * num_traces, observations, on_done, seed)
        sizes = [batch_size] * (num_traces // batch_size)
        if num_traces % batch_size:
            sizes.append(num_traces % batch_size)
        seeds = job_seeds(len(sizes), seed)
        jobs = [(lambda size=size, s=s: batch_job(size, observations, s)) for size, s in zip(sizes, seeds)]
        return [trace for traces in self.execute(jobs, on_done, seeds) for trace in traces]

    def close(self) -> None:
        for worker in self._workers:
            self._stop(worker)

    def __enter__(self) -> "SimulatorPool":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _child_stdout() -> int:
    """Where a simulator's stdout goes: our stderr, so that `--json` output on stdout stays clean."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a replaced stream, e.g. under pytest capture
        return subprocess.DEVNULL
