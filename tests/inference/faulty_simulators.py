"""Simulators that misbehave on purpose, run as processes by the fault tests.

``python -m tests.inference.faulty_simulators KIND --address ADDR``, KIND one of:
``hang-after N`` (stops answering in the middle of trace N), ``raise`` (the model
raises), ``bad-params`` (a Normal with negative std), ``infinite-mean`` (a Normal with
mean inf, which pyro's own validation lets through), ``silent`` (binds and never replies).
"""

from __future__ import annotations

import argparse
import time

import pyro.distributions as dist
import torch

import ppx

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind")
    parser.add_argument("count", nargs="?", type=int, default=0)
    parser.add_argument("--address", required=True)
    args = parser.parse_args()
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
