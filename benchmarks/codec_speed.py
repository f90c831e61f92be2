"""Microseconds per message: ppx.fastcodec's templates vs ppx.codec, for the messages of a Gaussian trace.

Both encode and decode the same messages in the same run (the fast paths give the
same bytes and the same messages; tests/ppx/test_fastcodec.py checks that).

    python -m benchmarks.codec_speed [--repeat 20000]
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np

from benchmarks._processes import machine
from ppx import codec, fastcodec
from ppx import messages as m

NORMAL = m.WireDistribution(1, (np.array(1.0), np.array(5 ** 0.5)))
TRACE = (  # every message of one trace, in order
    m.Run(), m.Sample("mu", "mu", NORMAL), m.SampleResult(np.array(0.3)),
    m.Observe("obs0", "obs0", NORMAL), m.ObserveResult(), m.Observe("obs1", "obs1", NORMAL), m.ObserveResult(),
    m.RunResult(np.array(0.3)),
)


def best_microseconds(function, argument, repeat: int) -> float:
    return min(timeit.repeat(lambda: function(argument), number=repeat, repeat=5)) / repeat * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20000, help="calls per timing (best of 5)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"{'message':14s} {'encode us':>22s} {'decode us':>22s}")
    totals = [0.0, 0.0]
    for message in TRACE:
        frame = codec.encode(message)
        fastcodec.encode(message), fastcodec.decode(frame)  # the first of a layout makes its template
        encode = best_microseconds(codec.encode, message, args.repeat), \
            best_microseconds(fastcodec.encode, message, args.repeat)
        decode = best_microseconds(codec.decode, frame, args.repeat), \
            best_microseconds(fastcodec.decode, frame, args.repeat)
        totals[0] += encode[0] + decode[0]
        totals[1] += encode[1] + decode[1]
        print(f"{type(message).__name__:14s} {encode[0]:6.1f} -> {encode[1]:5.1f} ({encode[0] / encode[1]:4.1f}x) "
              f"{decode[0]:6.1f} -> {decode[1]:5.1f} ({decode[0] / decode[1]:4.1f}x)")
    print(f"one Gaussian trace (each message encoded once and decoded once): {totals[0]:.0f} us with ppx.codec, "
          f"{totals[1]:.0f} us with ppx.fastcodec ({totals[0] / totals[1]:.1f}x)")


if __name__ == "__main__":
    main()
