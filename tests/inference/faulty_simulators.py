"""Simulators that misbehave on purpose, run as processes by the fault tests.

``python -m tests.inference.faulty_simulators KIND --address ADDR``, KIND one of:
``hang-after N`` (stops answering in the middle of trace N), ``raise`` (the model
raises), ``bad-params`` (a Normal with negative std), ``infinite-mean`` (a Normal with
mean inf, which pyro's own validation lets through), ``silent`` (binds and never replies),
``out-of-order N MESSAGE`` (the Gaussian model, but Run number N, for one trace or a
batch, is answered with MESSAGE: ``HandshakeResult``, ``SampleResult`` or ``RunResult``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyro.distributions as dist
import torch

import ppx
from ppx import codec
from ppx import messages as m
from ppx.batch import pack
from ppx.simulator import record_prior_trace
from ppx.transport import Listener
from simulators import gaussian

_runs = 0


def hang_after(count: int):
    def model():
        global _runs
        _runs += 1
        mu = ppx.sample(dist.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0), name="mu")
        if _runs == count:
            time.sleep(3600)
        ppx.observe(dist.Normal(mu, 1.0), name="obs")
        return mu
    return model


def raising():
    raise RuntimeError("detector geometry file missing")


def bad_params():
    return ppx.sample(dist.Normal(torch.tensor(0.0), torch.tensor(-1.0), validate_args=False), name="x")


def infinite_mean():
    return ppx.sample(dist.Normal(torch.tensor(float("inf"), dtype=torch.float64), 1.0), name="x")


WRONG_REPLIES = {
    "HandshakeResult": m.HandshakeResult("faulty", "out-of-order"),
    "SampleResult": m.SampleResult(np.zeros(())),
    "RunResult": m.RunResult(np.zeros(())),
}


def serve_out_of_order(address: str, count: int, wrong: str) -> None:
    """Serve the Gaussian model by hand, answering the ``count``-th Run with ``WRONG_REPLIES[wrong]``."""
    listener = Listener(address)

    def exchange(message: m.Message) -> m.Message:
        listener.reply(codec.encode(message))
        return codec.decode(listener.receive())

    normal = m.WireDistribution(1, (np.array(gaussian.PRIOR_MEAN), np.array(gaussian.PRIOR_STD)))
    runs = 0
    request = codec.decode(listener.receive())
    while True:
        if isinstance(request, m.Handshake):
            request = exchange(m.HandshakeResult("faulty", "out-of-order", m.PROTOCOL_VERSION,
                                                 (m.CAPABILITY_TRACE_BATCH,)))
            continue
        runs += 1
        if runs == count:
            request = exchange(WRONG_REPLIES[wrong])
        elif request.num_traces:
            traces = [record_prior_trace(gaussian.model) for _ in range(request.num_traces)]
            request = exchange(pack([records for records, _ in traces], [result for _, result in traces]))
        else:
            mu = exchange(m.Sample("mu", "mu", normal)).result
            likelihood = m.WireDistribution(1, (mu, np.array(gaussian.NOISE_STD)))
            exchange(m.Observe("obs0", "obs0", likelihood))
            exchange(m.Observe("obs1", "obs1", likelihood))
            request = exchange(m.RunResult(mu))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind")
    parser.add_argument("count", nargs="?", type=int, default=0)
    parser.add_argument("message", nargs="?", choices=sorted(WRONG_REPLIES))
    parser.add_argument("--address", required=True)
    args = parser.parse_args()
    if args.kind == "out-of-order":
        serve_out_of_order(args.address, args.count, args.message)
    if args.kind == "silent":
        import zmq
        socket = zmq.Context.instance().socket(zmq.REP)
        socket.bind(args.address)
        socket.recv()
        time.sleep(3600)
    models = {"hang-after": lambda: hang_after(args.count), "raise": lambda: raising,
              "bad-params": lambda: bad_params, "infinite-mean": lambda: infinite_mean}
    ppx.serve(models[args.kind](), args.address)


if __name__ == "__main__":
    main()
