"""Coverage-guided fuzzing of the PPX decoder with atheris (libFuzzer) for a fixed budget.

Every input goes the way an untrusted frame goes in the engine,
``ppx.untrusted.decode_and_check``: decoded, a TraceBatch unpacked (validated) and
its parameters checked, a Sample's or Observe's distribution built.
``ProtocolError`` is the expected answer to a bad frame; any other exception is a
crash. Crashing inputs are saved, one per distinct exception and
place, and fuzzing carries on; libFuzzer itself stops the run on an input that takes
longer than ``--input-timeout`` seconds or on memory above ``--rss-limit-mb``, and
saves that input too. The seed corpus holds a valid frame of every message type and
every distribution. The run's coverage at start (the seeds alone) and at the end is
the comparison point.

    pip install -e ".[fuzz]"
    python -m benchmarks.fuzz_decoder [--seconds 60] [--crashes fuzz-crashes] [--corpus DIR]

Crashes found here become regression cases in ``tests/ppx/fuzz_regressions/``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np

WORKER_FLAG = "--worker"
CRASHES_VARIABLE = "PPX_FUZZ_CRASHES"


def seed_frames() -> dict[str, bytes]:
    """A valid frame of every message type, and a Sample and an Observe of every distribution."""
    from ppx import batch, codec
    from ppx import messages as m
    from ppx.distributions import KINDS

    normal = m.WireDistribution(1, (np.array(0.5), np.array([1.0, 2.0])))
    categorical = m.WireDistribution(3, (np.array([0.2, 0.3, 0.5]),))
    trace_batch = batch.pack(
        [[batch.Record(m.RECORD_SAMPLE, "a", "mu", normal, np.array([0.1, 0.2])),
          batch.Record(m.RECORD_OBSERVE, "b", "", categorical, np.array(1.0), control=False),
          batch.Record(m.RECORD_TAG, "a", "tag", None, np.ones((1, 2)))], []],
        [np.array(3.0), None])
    messages = [
        m.Handshake("engine", 1, ("trace-batch", "error", "stage")),
        m.HandshakeResult("simulator", "gaussian", 1, ("trace-batch",)),
        m.Run(), m.RunResult(np.array([[1.0, -0.0], [np.nan, np.inf]])),
        m.Sample("[forward()+0x96]", "mu", normal, control=False), m.SampleResult(np.array(1.5)),
        m.Observe("[forward()+0x1c2]", "obs0", categorical, np.array(2.0)), m.ObserveResult(),
        m.Tag("t", "energy", np.zeros((2, 0, 3))), m.TagResult(), m.Reset(), trace_batch,
        m.Error("model raised ValueError"),
        m.StageRequest("shower", (np.array([1.0]), np.array(50.0))),
        m.StageResult(run_locally=False, outputs=(np.zeros((3, 4)),)),
        m.StageOutput("shower", (np.ones(2),)), m.StageOutputResult(),
    ]
    assert {type(message) for message in messages} == set(m.MESSAGE_TYPES), "a message type has no seed"
    frames = {f"{i:02d}-{type(message).__name__}": codec.encode(message) for i, message in enumerate(messages)}
    for kind in KINDS:
        params = tuple(np.full(2, 0.5) for _ in kind.wire_params)
        distribution = m.WireDistribution(kind.type_id, params)
        frames[f"sample-{kind.name}"] = codec.encode(m.Sample("s", kind.name, distribution))
        frames[f"observe-{kind.name}"] = codec.encode(m.Observe("o", "", distribution, np.ones(2)))
    return frames


# ---------------------------------------------------------------- the fuzzing process


def _worker(libfuzzer_args: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["ppx"]):
        from ppx.errors import ProtocolError
        from ppx.untrusted import decode_and_check

    crashes = Path(os.environ[CRASHES_VARIABLE])
    seen: set[str] = {path.stem.split("-")[1] for path in crashes.glob("crash-*.bin")}

    def one_input(frame: bytes) -> None:
        try:
            decode_and_check(frame)
        except ProtocolError:
            pass
        except Exception as err:  # a crash: keep the input, once per exception and place
            where = traceback.extract_tb(err.__traceback__)[-1]
            signature = f"{type(err).__name__} at {Path(where.filename).name}:{where.lineno}"
            key = hashlib.sha1(signature.encode()).hexdigest()[:10]
            if key not in seen:
                seen.add(key)
                name = f"crash-{key}-{hashlib.sha1(frame).hexdigest()[:10]}"
                (crashes / f"{name}.bin").write_bytes(frame)
                (crashes / f"{name}.txt").write_text(f"{signature}\n\n{traceback.format_exc()}")
                print(f"CRASH {signature}: saved {name}.bin", file=sys.stderr, flush=True)

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


# ---------------------------------------------------------------- the driver


def _stat(output: str, pattern: str) -> str:
    found = re.findall(pattern, output)
    return found[-1] if found else "?"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == WORKER_FLAG:
        _worker(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="fuzzing budget in seconds (default 60)")
    parser.add_argument("--crashes", default="fuzz-crashes", help="folder for crashing inputs (default fuzz-crashes)")
    parser.add_argument("--corpus", help="keep the evolving corpus in this folder (default: a temporary one)")
    parser.add_argument("--max-len", type=int, default=4096, help="longest input tried, in bytes (default 4096)")
    parser.add_argument("--input-timeout", type=int, default=5,
                        help="seconds one input may take before it counts as a hang (default 5)")
    parser.add_argument("--rss-limit-mb", type=int, default=4096,
                        help="memory above which an input counts as a crash (default 4096)")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer's random seed (default 1)")
    args = parser.parse_args()
    try:
        import atheris  # noqa: F401  (only to fail early with the remedy)
    except ImportError:
        sys.exit("atheris is not installed: pip install -e '.[fuzz]' (or pip install atheris)")

    crashes = Path(args.crashes).resolve()
    crashes.mkdir(parents=True, exist_ok=True)
    before = set(crashes.iterdir())
    with tempfile.TemporaryDirectory(prefix="ppx-fuzz-") as scratch:
        corpus = Path(args.corpus) if args.corpus else Path(scratch) / "corpus"
        seeds = Path(scratch) / "seeds"
        for path in (corpus, seeds):
            path.mkdir(parents=True, exist_ok=True)
        for name, frame in seed_frames().items():
            (seeds / name).write_bytes(frame)
        command = [sys.executable, "-m", "benchmarks.fuzz_decoder", WORKER_FLAG,
                   f"-max_total_time={args.seconds}", f"-max_len={args.max_len}", f"-timeout={args.input_timeout}",
                   f"-rss_limit_mb={args.rss_limit_mb}", f"-seed={args.seed}", "-print_final_stats=1",
                   f"-artifact_prefix={crashes}/", str(corpus), str(seeds)]
        environment = {**os.environ, CRASHES_VARIABLE: str(crashes)}
        run = subprocess.run(command, env=environment, capture_output=True, text=True)
    output = run.stderr + run.stdout
    new_files = sorted(path.name for path in set(crashes.iterdir()) - before)
    crash_inputs = [name for name in new_files if not name.endswith(".txt")]
    executions = _stat(output, r"stat::number_of_executed_units:\s*(\d+)")
    per_second = _stat(output, r"stat::average_exec_per_sec:\s*(\d+)")
    initial, final = _stat(output, r"INITED cov: (\d+)"), _stat(output, r"cov: (\d+)")
    corpus_size, peak = _stat(output, r"corp: (\d+)"), _stat(output, r"stat::peak_rss_mb:\s*(\d+)")
    print(f"fuzzed ppx.codec.decode, TraceBatch unpacking and from_wire for {args.seconds} s "
          f"(libFuzzer exit code {run.returncode})")
    print(f"executions:          {executions} ({per_second} per second)")
    print(f"coverage (edges):    {initial} from the {len(seed_frames())} seeds, {final} at the end")
    print(f"corpus:              {corpus_size} inputs; peak memory {peak} MB")
    print(f"crashes:             {len(crash_inputs)} new in {crashes}")
    for name in crash_inputs:
        print(f"  {name}")
    if run.returncode != 0 and not crash_inputs:
        print(output[-3000:], file=sys.stderr)


if __name__ == "__main__":
    main()
