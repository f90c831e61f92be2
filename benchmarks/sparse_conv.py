"""Sparse vs dense 3D convolution: forward+backward time and peak memory of a 4-layer network.

The network is four 3x3x3 convolutions (1 -> 32 -> 32 -> 32 -> 32 channels) with
ReLU between them: ``SubmanifoldConv3d`` on the active voxels, or ``Conv3d``
(padding 1) on the dense volume. One iteration is: build the input (for the
sparse net a fresh ``SparseTensor`` from coordinates and features, so the kernel
map is built every time, as for each new batch in training), forward, a
sum-of-squares loss, backward. Times are the best of ``--repeats`` iterations
after one warm-up; "fwd" is the part up to the loss.

Dense Conv3d does the same work whatever the values, so it is measured once per
size (on the first pattern and occupancy) and compared with every sparse row of
that size. "(cpu time)" is the speed-up in process CPU time, which other
processes on a shared machine disturb less than wall time (with one thread).

Peak memory is the increase of the maximum resident set size (``ru_maxrss``)
over the iterations, in a fresh subprocess per configuration, from a baseline
taken once the input data and the network exist and one pass over a tiny
8^3 input has loaded the kernels' code; unlike tracemalloc it sees every
allocation torch makes. The first full-size iteration allocates from fresh
pages, so the increase is the working set of one iteration. Dense configurations whose estimated time per iteration or
memory (extrapolated from the largest measured one by volume) exceed the
budgets are skipped with a note.

Threads: torch's default unless ``--threads`` says otherwise. On a machine
shared with other busy processes, use ``--threads 1``: with more threads than
free cores every parallel op waits at an OpenMP barrier for a descheduled
thread, which costs the sparse net (hundreds of small parallel ops) far more
than the dense one (a few large ones) and makes both erratic.

Occupancy patterns: ``uniform`` activates a random set of voxels; ``tracks``
rasterises random straight segments (like particle tracks), whose voxels have
several active neighbours each, so a kernel map holds more pairs per voxel.

    python -m benchmarks.sparse_conv [--sizes 64 128 256] [--occupancies 0.01 0.001]
                                     [--patterns uniform tracks] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Optional

import torch
from torch import nn

from benchmarks._processes import machine

CHANNELS = 32
LAYERS = 4


@dataclass
class Job:
    method: str
    """"sparse" or "dense"."""
    size: int
    occupancy: float
    pattern: str
    repeats: int
    threads: int
    seed: int = 0


def uniform_voxels(size: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` distinct voxels drawn uniformly (without a volume-sized permutation, whose memory
    would raise the resident-set baseline above the working set being measured)."""
    keys = torch.zeros(0, dtype=torch.long)
    while len(keys) < count:
        draws = torch.randint(size ** 3, (count - len(keys) + 16,), generator=generator)
        keys = torch.unique(torch.cat((keys, draws)))
    keys = keys[torch.randperm(len(keys), generator=generator)[:count]].sort().values
    return torch.stack((keys // (size * size), (keys // size) % size, keys % size), dim=1)


def track_voxels(size: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """Distinct voxels on random straight segments 10-100 voxels long, until ``count`` are active."""
    found = torch.zeros(0, 3, dtype=torch.long)
    while len(found) < count:
        segments = max(16, (count - len(found)) // 40)
        starts = torch.rand(segments, 1, 3, generator=generator) * size
        directions = torch.nn.functional.normalize(torch.randn(segments, 1, 3, generator=generator), dim=2)
        lengths = 10 + 90 * torch.rand(segments, 1, 1, generator=generator)
        steps = torch.linspace(0, 1, 200).reshape(1, -1, 1)
        points = (starts + steps * lengths * directions).floor().long().reshape(-1, 3)
        points = points[((points >= 0) & (points < size)).all(1)]
        found = torch.unique(torch.cat((found, points)), dim=0)
    keep = torch.randperm(len(found), generator=generator)[:count]
    return found[keep.sort().values]


def _sparse_network() -> nn.Module:
    from inference.sparse import SparseReLU, SubmanifoldConv3d

    layers: list[nn.Module] = []
    for index in range(LAYERS):
        layers += [SubmanifoldConv3d(1 if index == 0 else CHANNELS, CHANNELS, 3)]
        layers += [SparseReLU()] if index < LAYERS - 1 else []
    return nn.Sequential(*layers)


def _dense_network() -> nn.Module:
    layers: list[nn.Module] = []
    for index in range(LAYERS):
        layers += [nn.Conv3d(1 if index == 0 else CHANNELS, CHANNELS, 3, padding=1)]
        layers += [nn.ReLU()] if index < LAYERS - 1 else []
    return nn.Sequential(*layers)


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_job(job: Job) -> dict:
    """Time one configuration in this process; returns times (s), peak memory (bytes) and sizes."""
    torch.set_num_threads(job.threads)
    generator = torch.Generator().manual_seed(job.seed)
    count = max(1, round(job.occupancy * job.size ** 3))
    voxels = (uniform_voxels if job.pattern == "uniform" else track_voxels)(job.size, count, generator)
    values = torch.rand(len(voxels), 1, generator=generator) + 0.5
    torch.manual_seed(job.seed)
    result: dict = {"active": len(voxels)}
    if job.method == "sparse":
        from inference.sparse import SparseTensor, submanifold_map

        network = _sparse_network()
        shape = (job.size,) * 3

        def make_input():
            return SparseTensor.from_events([(voxels, values)], shape)

        def make_small_input():
            diagonal = torch.arange(8).unsqueeze(1).expand(8, 3)
            return SparseTensor.from_events([(diagonal, values[:8])], (8, 8, 8))

        def loss_of(output):
            return output.features.square().sum()

    else:
        network = _dense_network()
        dense = torch.zeros(1, 1, job.size, job.size, job.size)
        dense[0, 0, voxels[:, 0], voxels[:, 1], voxels[:, 2]] = values[:, 0]

        def make_input():
            return dense

        def make_small_input():
            return dense[..., :8, :8, :8]

        def loss_of(output):
            return output.square().sum()

    loss_of(network(make_small_input())).backward()
    baseline = _peak_rss_bytes()
    forward_times, total_times, cpu_times = [], [], []
    for _ in range(job.repeats + 1):
        network.zero_grad(set_to_none=True)
        started, cpu_started = time.perf_counter(), time.process_time()
        loss = loss_of(network(make_input()))
        forwarded = time.perf_counter()
        loss.backward()
        finished = time.perf_counter()
        forward_times.append(forwarded - started)
        total_times.append(finished - started)
        cpu_times.append(time.process_time() - cpu_started)
        del loss
    result.update(forward=min(forward_times[1:]), total=min(total_times[1:]), cpu=min(cpu_times[1:]),
                  peak_bytes=max(0, _peak_rss_bytes() - baseline))
    if job.method == "sparse":
        kernel_map = submanifold_map(make_input().site_set, (3, 3, 3), (1, 1, 1))
        result["pairs_per_site"] = kernel_map.num_pairs / len(voxels)
    return result


def run_in_subprocess(job: Job) -> dict:
    command = [sys.executable, "-m", "benchmarks.sparse_conv", "--job", json.dumps(asdict(job))]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"benchmark job {job} failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


@dataclass
class DenseBudget:
    seconds: float
    bytes: float
    per_voxel_seconds: float = 0.0
    per_voxel_bytes: float = 0.0

    def learn(self, size: int, measured: dict) -> None:
        volume = size ** 3
        self.per_voxel_seconds = max(self.per_voxel_seconds, measured["total"] / volume)
        self.per_voxel_bytes = max(self.per_voxel_bytes, measured["peak_bytes"] / volume)

    def refusal(self, size: int, repeats: int) -> Optional[str]:
        """Why a dense run at ``size`` would not fit, or None."""
        seconds = self.per_voxel_seconds * size ** 3
        memory = self.per_voxel_bytes * size ** 3
        if seconds * (repeats + 1) > self.seconds:
            return f"dense {size}^3 skipped: about {seconds:.0f} s per iteration, over the {self.seconds:.0f} s budget"
        if memory > self.bytes:
            return f"dense {size}^3 skipped: about {memory / 2**30:.1f} GiB, over the {self.bytes / 2**30:.1f} GiB budget"
        return None


def _milliseconds(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:,.1f}"


def _mebibytes(value: Optional[float]) -> str:
    return "-" if value is None else f"{value / 2**20:,.1f}"


def _ratio(numerator: Optional[float], denominator: Optional[float]) -> str:
    if numerator is None or denominator is None:
        return "-"
    return f"{numerator / max(denominator, 1e-12):,.0f}x" if denominator > 0 else "inf"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--occupancies", type=float, nargs="+", default=[0.01, 0.001])
    parser.add_argument("--patterns", nargs="+", default=["uniform", "tracks"], choices=["uniform", "tracks"])
    parser.add_argument("--repeats", type=int, default=3, help="timed iterations after one warm-up")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument("--dense-seconds", type=float, default=120.0,
                        help="skip a dense configuration whose warm-up and repeats would take longer")
    parser.add_argument("--dense-gib", type=float, default=8.0, help="skip a dense configuration needing more memory")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        print(json.dumps(run_job(Job(**json.loads(args.job)))))
        return

    print(f"machine: {machine()}, torch {torch.__version__}, {args.threads} torch thread(s), "
          f"load average at start {os.getloadavg()[0]:.1f}")
    print(f"network: {LAYERS} x 3^3 conv, 1->{CHANNELS}->...->{CHANNELS} channels, float32; best of {args.repeats} "
          f"after a warm-up; memory = peak RSS increase in a fresh process")
    header = (f"{'pattern':>8} {'size':>6} {'occ':>6} {'active':>8} {'pairs/site':>10} {'sparse fwd ms':>13} "
              f"{'sparse f+b ms':>13} {'dense fwd ms':>12} {'dense f+b ms':>12} {'f+b speed-up':>12} "
              f"{'(cpu time)':>10} {'sparse MiB':>10} {'dense MiB':>10} {'mem ratio':>9}")
    notes = []
    budget = DenseBudget(args.dense_seconds, args.dense_gib * 2**30)
    print(header)
    for size in sorted(args.sizes):
        refusal = budget.refusal(size, args.repeats)
        dense: dict = {}
        if refusal is None:
            dense = run_in_subprocess(Job("dense", size, args.occupancies[0], args.patterns[0], args.repeats,
                                          args.threads))
            budget.learn(size, dense)
        else:
            notes.append(refusal)
        for pattern in args.patterns:
            for occupancy in args.occupancies:
                sparse = run_in_subprocess(Job("sparse", size, occupancy, pattern, args.repeats, args.threads))
                print(f"{pattern:>8} {size:>4}^3 {occupancy:>6.2%} {sparse['active']:>8,} "
                      f"{sparse['pairs_per_site']:>10.2f} {_milliseconds(sparse['forward']):>13} "
                      f"{_milliseconds(sparse['total']):>13} {_milliseconds(dense.get('forward')):>12} "
                      f"{_milliseconds(dense.get('total')):>12} {_ratio(dense.get('total'), sparse['total']):>12} "
                      f"{_ratio(dense.get('cpu'), sparse['cpu']):>10} "
                      f"{_mebibytes(sparse['peak_bytes']):>10} {_mebibytes(dense.get('peak_bytes')):>10} "
                      f"{_ratio(dense.get('peak_bytes'), sparse['peak_bytes']):>9}", flush=True)
    for note in notes:
        print(f"note: {note}")
    print(f"load average at end {os.getloadavg()[0]:.1f}; target: forward+backward at least 50x faster "
          f"than dense at 1% of 128^3")


if __name__ == "__main__":
    main()
