"""Data-parallel IC training: traces/s with 1 and 2 ranks, scaling efficiency, and a model for many nodes.

Both runs train the default IC network offline on the same branching-model
trace file, each rank with the same batch share (weak scaling, as data-parallel
clusters are run): the 2-rank run has twice the global batch and takes the
same number of steps. Ranks are started the way torchrun starts them.
Efficiency is ``rate(2) / (2 * rate(1))``.

The model for N nodes takes from this run the compute time of one step (in CPU
seconds: on a shared machine a rank's wall time includes waiting for a core) and
the gradient size, and from a separate 2-rank gloo measurement the latency and
bandwidth of an all-reduce, then predicts a step as compute + per-step
collectives, with a ring all-reduce (gloo's algorithm) and a tree all-reduce
(NCCL, MPI): ``efficiency(N) = compute / (compute + communication(N))``. The
loopback latency and bandwidth measured here flatter a network, so the model
is also printed for stated interconnect figures.

    python -m benchmarks.distributed_scaling [--steps 100] [--batch-per-rank 64]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks._processes import machine
from inference.ic.distributed import free_port, launch_local

INTERCONNECTS = {
    # name: (latency of one message hop in seconds, bandwidth in bytes/s): assumptions, not measurements
    "10 GbE, TCP (gloo)": (30e-6, 1.1e9),
    "100 Gb/s InfiniBand (NCCL/MPI)": (5e-6, 10e9),
}


def write_traces(path: Path, count: int) -> None:
    import pyro

    from inference.local import LocalSimulator
    from inference.trace_file import write_traces as write
    from simulators import branching

    pyro.set_rng_seed(0)
    write(path, LocalSimulator(branching.model).prior(count), model_name="branching")


def train(world_size: int, data: Path, out: Path, steps: int, batch_per_rank: int) -> dict:
    """Rank 0's JSON summary of one run of ``world_size`` ranks."""
    port = str(free_port())
    argv = [sys.executable, "-m", "inference", "train", "--dataset", str(data), "--out", str(out), "--json",
            "--quiet", "--seed", "0", "--batch-size", str(batch_per_rank * world_size),
            "-n", str(steps * batch_per_rank * world_size), "--validation-size", "64", "--checkpoint-every", "1e9"]
    processes = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env={
        **os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}) for rank in range(world_size)]
    outputs = [process.communicate()[0] for process in processes]
    if any(process.returncode for process in processes):
        raise SystemExit(f"the {world_size}-rank run failed")
    return json.loads(outputs[0].strip().splitlines()[-1])


def _time_all_reduce(numel: int, out: str) -> None:
    """One rank of the collective measurement: median seconds of an all-reduce of 1 and ``numel`` floats."""
    import torch.distributed as dist

    dist.init_process_group("gloo")
    results = {}
    for name, size in (("latency", 1), ("gradients", numel), ("bulk", 16 * 2 ** 20)):
        buffer = torch.ones(size)
        times = []
        for _ in range(30 if size < 2 ** 20 else 5):
            dist.barrier()
            started = time.perf_counter()
            dist.all_reduce(buffer)
            times.append(time.perf_counter() - started)
        results[name] = sorted(times)[len(times) // 2]
    if dist.get_rank() == 0:
        Path(out).write_text(json.dumps(results))
    dist.destroy_process_group()


def ring(latency: float, bandwidth: float, n: int, size: float) -> float:
    return 2 * (n - 1) * latency + 2 * (n - 1) / n * size / bandwidth


def tree(latency: float, bandwidth: float, n: int, size: float) -> float:
    return 2 * math.ceil(math.log2(n)) * latency + 2 * size / bandwidth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="training steps per run (default 100)")
    parser.add_argument("--batch-per-rank", type=int, default=64, help="traces per rank and step (default 64)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "branching.h5"
        write_traces(data, 4096)
        runs = {n: train(n, data, Path(folder) / f"net{n}.ckpt", args.steps, args.batch_per_rank) for n in (1, 2)}
        network = torch.load(Path(folder) / "net2.ckpt", weights_only=True)["state_dict"]
        numel = sum(v.numel() for k, v in network.items() if v.is_floating_point() and "observation_" not in k)
        launch_local(2, _time_all_reduce, numel, str(Path(folder) / "collectives.json"))
        collectives = json.loads((Path(folder) / "collectives.json").read_text())

    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f} at the end; IC network (default sizes), "
          f"branching model, {args.batch_per_rank} traces per rank and step, {args.steps} steps")
    for n, run in runs.items():
        t = run["timings"]
        print(f"  {n} process{'es' if n > 1 else ''}: {run['traces_per_second']:8.0f} traces/s   per step: compute "
              f"{1e3 * t['compute'] / t['steps']:.1f} ms, address/count sync {1e3 * t['synchronise'] / t['steps']:.2f}"
              f" ms, gradient all-reduce {1e3 * t['all_reduce'] / t['steps']:.2f} ms; rank 0 had "
              f"{100 * t['forward_backward_cpu'] / t['forward_backward']:.0f}% of a core while computing")
    # On a busy machine the ranks get less than a core each while computing, and the collectives
    # then include waiting for the slower rank: the measured efficiency includes that contention.
    efficiency = runs[2]["traces_per_second"] / (2 * runs[1]["traces_per_second"])
    print(f"scaling efficiency 1 -> 2 processes: {100 * efficiency:.0f}% "
          f"({runs[2]['traces_per_second'] / runs[1]['traces_per_second']:.2f}x the traces/s)")
    shares = {n: run["timings"]["forward_backward_cpu"] / run["timings"]["forward_backward"] for n, run in runs.items()}
    if shares[2] < 0.9:
        print(f"  the ranks had {100 * shares[2]:.0f}% of a core each (other work shares this machine); traces/s per "
              f"core they had: {100 * efficiency * shares[1] / shares[2]:.0f}% of the single process's")

    # A node's rank would have its cores to itself: model with the CPU time the 1-process steps
    # took (their wall time times the share of a core the process had), not their wall time.
    single = runs[1]["timings"]
    compute = single["compute"] / single["steps"] * single["forward_backward_cpu"] / single["forward_backward"]
    size = 4.0 * (numel + 64)  # float32 gradients plus per-parameter flags and the loss
    latency = collectives["latency"] / 2  # a 2-rank ring all-reduce is 2 hops
    bandwidth = 16 * 2 ** 22 / max(collectives["bulk"] - collectives["latency"], 1e-9)  # 2(N-1)/N = 1 at N = 2
    print(f"measured: compute {1e3 * compute:.1f} ms of CPU per step; gradients {numel:,} floats ({size / 1e6:.2f} MB); "
          f"2-rank gloo all-reduce of them {1e3 * collectives['gradients']:.2f} ms, of one float "
          f"{1e6 * collectives['latency']:.0f} us, loopback bandwidth {bandwidth / 1e9:.2f} GB/s")
    print("model: efficiency = compute / (compute + small all-reduce + gradient all-reduce)")
    links = {"loopback as measured": (latency, bandwidth), **INTERCONNECTS}
    for name, (hop, rate) in links.items():
        cells = []
        for n in (64, 1024):
            for label, cost in (("ring", ring), ("tree", tree)):
                communication = cost(hop, rate, n, 16.0) + cost(hop, rate, n, size)
                cells.append(f"{n} nodes {label} {100 * compute / (compute + communication):3.0f}%")
        print(f"  {name:32s} " + "  ".join(cells))


if __name__ == "__main__":
    main()
